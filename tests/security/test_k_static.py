"""attacks.md T51: no secret is compared with ``==``/``!=`` anywhere in the gateway package (static check).

Two views: the catalogue's grep pattern over the source text, and an AST walk that looks at the names on
either side of every ``==``/``!=`` (so ``state.issuer`` or ``decoded`` do not count, ``token_nonce`` does).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
SOURCES = sorted(GATEWAY.rglob("*.py"))

#: attacks.md T51 (both operand orders), with word boundaries so that "decoded" or "context" are not read as
#: secrets, and not when the name is an object whose attribute is compared ("state.issuer").
GREP = re.compile(r"\b(state|csrf|nonce|mac|sig|digest|token|tx)\w*\s*(==|!=)|(==|!=)\s*(state|csrf|nonce|mac|sig"
                  r"|digest|token|tx)\w*\b(?!\.)")
SECRET_WORDS = {"state", "csrf", "nonce", "mac", "hmac", "sig", "signature", "digest", "token", "tx", "secret",
                "verifier", "challenge", "tag", "password", "code"}
#: Value sides that name a secret but hold something public (checked by hand).
NOT_SECRET = {"token_type", "token_endpoint", "code_challenge_method", "state_count"}


def _leaf(node: ast.AST) -> str | None:
    """The identifier a compared value is named by: x, obj.attr, d["key"], d.get("key")."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
        return _leaf(node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def _is_secret_name(name: str) -> bool:
    if name.isupper() or name in NOT_SECRET:  # constants such as CLIENT_SECRET_BASIC name a method, not a secret
        return False
    parts = {p for p in re.split(r"[_\W]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()) if p}
    return bool(parts & SECRET_WORDS)


def test_t51_sources_exist() -> None:
    assert len(SOURCES) > 10, GATEWAY


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(GATEWAY)))
def test_t51_no_grep_hits_for_secret_comparisons(path: Path) -> None:
    hits = [f"{path.name}:{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
            if GREP.search(line) and not line.lstrip().startswith("#")]
    assert hits == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(GATEWAY)))
def test_t51_no_equality_comparison_of_secret_values(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            continue
        sides = [node.left, *node.comparators]
        # A comparison with a literal (None, "", a method name) checks a shape, not a secret's value.
        if any(isinstance(side, ast.Constant) for side in sides):
            continue
        names = [name for name in (_leaf(side) for side in sides) if name]
        if any(_is_secret_name(name) for name in names):
            hits.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert hits == []


def test_t51_the_checks_catch_what_they_should() -> None:
    """The detectors find the classic mistakes (guards against a check that silently matches nothing)."""
    bad = ["if state == expected_state: pass", "ok = token_nonce != nonce", "x = request_mac == mac",
           "y = claims.get('nonce') == login.nonce", "z = cookie['sig'] != sig"]
    for source in bad:
        tree = ast.parse(source)
        compare = next(n for n in ast.walk(tree) if isinstance(n, ast.Compare))
        assert any(_is_secret_name(n) for n in (_leaf(s) for s in [compare.left, *compare.comparators]) if n), source
    assert GREP.search("if state == expected:")
    assert GREP.search("if expected != token_nonce:")
    assert not GREP.search("if decoded == readings[-1]:")
    assert not GREP.search('if claims.get("iss") != state.issuer:')
