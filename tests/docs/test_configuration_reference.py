"""docs/configuration.md is the loader's schema in prose: each section lists exactly the keys the loader
accepts there (gateway/config/schema.py, which the loader checks against), and every default written as one
value is the loader's default (setting the key to it changes nothing)."""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import config
from gateway.config import schema
from gateway.config.assertion import RELEASABLE_CLAIMS
from tests.docs.pages import DOCS

PAGE = DOCS / "configuration.md"
#: Section heading -> where its keys sit in a document.
SECTIONS = {
    "Top-level keys": "",
    "providers": "providers[0]",
    "session": "session",
    "headers": "headers",
    "assertion": "assertion",
    "metrics": "metrics",
    "upstream_timeouts": "upstream_timeouts",
    "forward_auth": "forward_auth",
    "rate_limits": "rate_limits",
    "rules": "rules[0]",
    "routes": "routes[0]",
    "routes[].match": "routes[0].match",
    "routes[].assertion": "routes[0].assertion",
    "routes[].upstream_timeouts": "routes[0].upstream_timeouts",
    "pairwise": "pairwise",
    "audit": "audit",
    "admin": "admin",
}
def documented() -> dict[str, list[tuple[str, str]]]:
    """Section -> (key, default cell) of the first table under each `## ` heading."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for chunk in re.split(r"^## ", PAGE.read_text(encoding="utf-8"), flags=re.M)[1:]:
        title, _, body = chunk.partition("\n")
        rows = [line for line in body.splitlines() if line.startswith("|")]
        if title in SECTIONS and rows:
            cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows[2:]]
            tables[SECTIONS[title]] = [(c[0].replace("**", "").strip("`"), c[1]) for c in cells]
    return tables


def accepted() -> dict[str, set[str]]:
    """Where -> keys: the loader's schema (gateway/config/schema.py)."""
    return {where: set(keys) for where, keys in schema.SECTIONS.items()}


def test_the_loader_checks_keys_only_against_the_schema() -> None:
    """Every `problems.unknown_keys(path, data, KEYS)` in gateway/config/ passes a key set of schema.py that
    SECTIONS lists, so the page, the Helm schema and the loader cannot drift apart."""
    names = {name for name, value in vars(schema).items() if any(value is keys for keys in schema.SECTIONS.values())}
    calls = 0
    for module in sorted(Path(config.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "unknown_keys":
                keys = node.args[2]
                assert isinstance(keys, ast.Name) and keys.id in names, f"{module.name}:{node.lineno}: use schema.py"
                calls += 1
    # One call per key set: a set used in two places (upstream_timeouts, top level and per route) is read by
    # one function.
    assert calls == len({id(keys) for keys in schema.SECTIONS.values()})


def test_every_section_of_the_loader_is_documented() -> None:
    loader = accepted()
    assert set(loader) | {"headers"} == set(documented()), "a section of the schema has no section on the page"


@pytest.mark.parametrize("where", sorted(SECTIONS.values()))
def test_section_lists_exactly_the_accepted_keys(where: str) -> None:
    keys = {key for key, _ in documented()[where]}
    expected = set(RELEASABLE_CLAIMS) if where == "headers" else accepted()[where]
    assert keys - expected == set(), "documented, but the loader refuses them"
    assert expected - keys == set(), "accepted by the loader, but not documented"


def _base(where: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "public_url": "https://app.example.com",
        "upstream": "http://127.0.0.1:8082",
        "providers": [{"name": "p", "issuer": "https://login.example.com", "client_id": "c", "client_secret": "s"}],
        "session": {"secret": "x" * 40},
    }
    if where == "rules[0]":
        document["rules"] = [{}]
    if where.startswith("routes[0]"):
        del document["upstream"]
        document["routes"] = [{"name": "app", "upstream": "http://127.0.0.1:8082"}]
    if where == "pairwise":
        document["pairwise"] = {"secret": "p" * 40}
    if where == "admin":
        document["metrics"] = {"listen": "127.0.0.1:9090"}
        token = Path(__file__).resolve().parents[2] / "tests" / "docs" / "admin.token.example"
        document["admin"] = {"token_file": str(token)}
    if where == "audit":
        document["audit"] = {"file": "-", "secret": "a" * 40}
    return document


def _set(document: dict[str, Any], where: str, key: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(document)
    if not where:
        document[key] = value
    elif where.endswith("[0]"):
        document[where[:-3]][0][key] = value
    elif where.startswith("routes[0]."):
        document["routes"][0].setdefault(where.removeprefix("routes[0]."), {})[key] = value
    else:
        document.setdefault(where, {})[key] = value
    return document


def _single_values() -> list[tuple[str, str, str]]:
    """(where, key, default) for each default cell that is exactly one code span: a value to check."""
    return [
        (where, key, match.group(1))
        for where, rows in documented().items()
        for key, cell in rows
        if where != "headers" and (match := re.fullmatch(r"`([^`]+)`", cell))
    ]


DEFAULTS = _single_values()


@pytest.mark.parametrize(("where", "key", "default"), DEFAULTS, ids=[f"{w}.{k}".lstrip(".") for w, k, _ in DEFAULTS])
def test_documented_default_is_the_loaders(where: str, key: str, default: str) -> None:
    base = _base(where)
    value = yaml.safe_load(f"v: {default}")["v"]
    assert config.load_settings(_set(base, where, key, value), {}) == config.load_settings(base, {})


def test_the_defaults_are_checked_for_most_keys() -> None:
    """Descriptive defaults (required, generated, from discovery, ...) are skipped; the rest are checked."""
    assert len(DEFAULTS) >= 40


def test_a_wrong_default_would_be_caught() -> None:
    base = _base("session")
    assert config.load_settings(_set(base, "session", "lifetime", "9h"), {}) != config.load_settings(base, {})
