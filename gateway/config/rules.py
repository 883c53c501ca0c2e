"""The ``rules`` section: which claims a request to a host and path prefix needs. The same checks read a
route's ``match.path_prefix`` and ``require`` (routes.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.reader import Problems, Reader
from gateway.config.schema import RULE_KEYS
from gateway.config.yaml_loader import quote_list
from gateway.policy import Rule
from gateway.protocol.claims import CANONICAL_CLAIMS
from gateway.protocol.redirect_target import parse_redirect_domain


def read_path_prefix(r: Reader, name: str = "path_prefix") -> str:
    prefix = r.string(name, "/") or "/"
    if not prefix.startswith("/") or any(c in prefix for c in "?#%\\*") or "//" in prefix or "/../" in prefix + "/":
        r.problems.add(r.key(name), "must be a plain path such as /admin/")
    return prefix


def read_require(raw: Mapping[str, Any] | None, path: str, problems: Problems) -> dict[str, tuple[str, ...]]:
    """``path`` is the key of the mapping itself, e.g. ``rules[0].require``."""
    require: dict[str, tuple[str, ...]] = {}
    for claim, values in (raw or {}).items():
        if claim not in CANONICAL_CLAIMS:
            problems.add(f"{path}.{claim}", f"unknown canonical claim; use one of {', '.join(CANONICAL_CLAIMS)}")
        elif isinstance(values, list) and (trap := quote_list(values)) is not None:
            problems.add(f"{path}.{claim}", trap)  # the words YAML read, and the list quoted
        elif isinstance(values, list) and any(isinstance(v, bool) for v in values):
            problems.add(
                f"{path}.{claim}",
                'YAML read a bare NO, YES, ON or OFF as true/false; quote it, e.g. [SE, "NO"]',
            )
        elif not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            problems.add(f"{path}.{claim}", 'must be a non-empty list of allowed values, e.g. [SE, "NO"]')
        else:
            require[claim] = tuple(values)
    return require


def load_rules(raw: Any, problems: Problems) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("rules", "must be a list of {host, path_prefix, require}")
        return ()
    rules: list[Rule] = []
    for i, item in enumerate(raw):
        path = f"rules[{i}]."
        if not isinstance(item, dict):
            problems.add(f"rules[{i}]", "must be a mapping with path_prefix, host and require")
            continue
        problems.unknown_keys(path, item, RULE_KEYS)
        r = Reader(item, path, problems)
        prefix = read_path_prefix(r)
        host = r.string("host")
        if host is not None and parse_redirect_domain(host) is None:
            problems.add(r.key("host"), "must be a host name such as app.example.com")
        require = read_require(r.mapping("require"), f"{path}require", problems)
        rules.append(Rule(path_prefix=prefix, host=host.lower() if host else None, require=require))
    return tuple(rules)
