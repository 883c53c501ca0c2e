"""docs/troubleshooting.md quotes every message a person or operator can get from start-up and login: the
configuration problems (gateway/config/*.py, the store URL and key-file checks, public-path
patterns), the command line's errors, and the public message of every error page. A new message in the code
fails here until the page explains it."""

from __future__ import annotations

import ast
import re

import pytest

from tests.docs.pages import DOCS, REPO

PAGE = DOCS / "troubleshooting.md"
GATEWAY = REPO / "gateway"


def _text(node: ast.expr) -> str:
    """A message with every computed part as <...>: only the literal parts are compared."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "<>" for v in node.values)
    return "<>"


def _tree(path: str) -> ast.AST:
    return ast.parse((GATEWAY / path).read_text(encoding="utf-8"))


def messages() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in sorted(str(p.relative_to(GATEWAY)) for p in (GATEWAY / "config").glob("*.py")):  # problems.add()
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add":
                found.append((f"{path}:{node.lineno}", _text(node.args[1])))
    for path, error in (("session/store_url.py", "ValueError"), ("keys.py", "KeyFileError")):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == error and node.args:
                found.append((f"{path}:{node.lineno}", _text(node.args[0])))
    for node in ast.walk(_tree("protocol/paths.py")):
        if isinstance(node, ast.FunctionDef) and node.name == "validate_public_path_pattern":
            found += [
                (f"protocol/paths.py:{r.lineno}", _text(r.value))
                for r in ast.walk(node)
                if isinstance(r, ast.Return) and r.value is not None and _text(r.value) != "<>"
            ]
    for path in ("cli.py", "server.py"):  # what the command line prints on stderr, the C-parser refusal
        for node in ast.walk(_tree(path)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
                and any(k.arg == "file" for k in node.keywords)
            ):
                found.append((f"{path}:{node.lineno}", _text(node.args[0])))
            if isinstance(node, ast.FunctionDef) and node.name == "check_parser":
                found += [
                    (f"{path}:{r.lineno}", _text(r.value))
                    for r in ast.walk(node)
                    if isinstance(r, ast.Return) and r.value is not None and _text(r.value) != "<>"
                ]
    for file in sorted(GATEWAY.rglob("*.py")):  # the error pages' public messages
        if "devidp" in file.parts:
            continue
        where = file.relative_to(GATEWAY).as_posix()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "public_message" for t in node.targets):
                found.append((f"{where}:{node.lineno}", _text(node.value)))
            if isinstance(node, ast.keyword) and node.arg == "public_message":
                found.append((f"{where}:{node.value.lineno}", _text(node.value)))
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_USER_START_ERRORS":
                assert isinstance(node.value, ast.Dict)
                found += [(f"{where}:{v.lineno}", _text(v)) for v in node.value.values if v is not None]
    return [(where, text) for where, text in found if text != "<>"]


MESSAGES = messages()


def _missing(text: str, page: str) -> list[str]:
    parts = [p.strip(" :;,") for p in text.split("<>")]
    return [p for p in parts if len(p) >= 8 and p not in page]


@pytest.mark.parametrize(("where", "text"), MESSAGES, ids=[w for w, _ in MESSAGES])
def test_message_is_quoted_on_the_page(where: str, text: str) -> None:
    assert _missing(text, PAGE.read_text(encoding="utf-8")) == [], f"gateway/{where} is not on {PAGE.name}"


def test_the_messages_were_found() -> None:
    """The readers above see the code's messages: enough of them, from every source."""
    sources = {re.sub(r":\d+$", "", where) for where, _ in MESSAGES}
    expected = {"config/settings.py", "config/providers.py", "config/reader.py", "keys.py", "session/store_url.py"}
    assert expected | {"cli.py", "server.py"} <= sources
    assert len(MESSAGES) >= 90


def test_a_message_that_is_not_there_is_caught() -> None:
    """Literal parts of 8 characters or more must appear; shorter ones ("must be") say too little."""
    assert _missing("must be <> made up for this test", "") == ["made up for this test"]
