"""Return-target validation: attacks.md T01 (open redirect), T02 (host confusion), T04 (logout)."""

from __future__ import annotations

import pytest

from gateway.protocol.redirect_target import safe_return_path

# T01, verbatim, plus the raw TAB/VT/CR/LF variants of "/ /evil.example".
T01 = [
    "/%5Cevil.example",
    "/\\evil.example",
    "//evil.example",
    "///evil.example",
    "/%09/evil.example",
    "/%2F%2Fevil.example",
    "/%2f%5c%2fevil.example",
    "/./\\evil.example",
    "/./../../\\evil.example",
    "https:evil.example",
    "https://evil.example",
    "//app.example.test@evil.example",
    "javascript:alert(1)",
    "/%0d%0aLocation:%20https://evil.example",
    "/\t/evil.example",
    "/\x0b/evil.example",
    "/\r/evil.example",
    "/\n/evil.example",
]

# T02 with GW host app.example.test: no absolute URL is accepted, not even our own origin.
T02 = [
    "https://evil-app.example.test/",
    "https://app.example.test.evil.example/",
    "https://evil.example/?rd=app.example.test",
    "https://app.example.test:3838/",
    "https://app.example.test%2eevil.example/",
    "https://google.fr\\.app.example.test/",
    "https://APP.EXAMPLE.TEST./",
    "https://app.example.test/",
    "https://app.example.test/private/a",
    "//app.example.test/private/a",
]

# T04: the same validator guards logout; these are its own examples.
T04 = [
    "//evil.example",
    "https://evil.example",
]

# Further encodings of the same tricks.
MORE = [
    "/%5C%5Cevil.example",
    "/%5c/evil.example",
    "/%252F%252Fevil.example",
    "/%25252F%25252Fevil.example",
    "/%2525252F%2525252Fevil.example",  # still decoding after three rounds
    "/%2e/%2e%2e/%5Cevil.example",
    "/.%2f/evil.example",
    "/..//evil.example",
    "/.//evil.example",
    "/a/../..//evil.example",
    "/%0aevil",
    "/%0Devil",
    "/%00evil",
    "/%7fevil",
    "/%C2%A0/evil.example",  # NBSP
    "/%E2%80%A8/evil.example",  # U+2028
    "/%c2%85/evil.example",  # NEL
    "/\x00",
    "/\x7f",
    "/\u00a0/evil.example",
    "/\u3000/evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    " /private",
    "\t/private",
    "%2F%2Fevil.example",
    "%2Fprivate",
    "private/a",
    "evil.example",
    "http:/evil.example",
    "http:evil.example",
    "data:text/html,<script>alert(1)</script>",
    "JaVaScRiPt:alert(1)",
    "/private#frag",
    "/private/a?x=1#/evil",
    "/Å",
    "/private/ä",
    "/" + "a" * 2048,
    "",
]


@pytest.mark.parametrize("raw", T01 + T02 + T04 + MORE)
def test_unsafe_targets_fall_back_to_default(raw: str) -> None:
    assert safe_return_path(raw) == "/"
    assert safe_return_path(raw, default="/welcome") == "/welcome"


def test_none_falls_back_to_default() -> None:
    assert safe_return_path(None) == "/"
    assert safe_return_path(None, default="/signed-out") == "/signed-out"


@pytest.mark.parametrize(
    "raw",
    [
        "/",
        "/private/a?x=1&y=%20z",
        "/%C3%85",
        "/private/a",
        "/private/a/",
        "/a/b/../c",
        "/./a",
        "/a%2Fb",
        "/a%252Fb",  # two rounds of decoding, still one leading "/"
        "/a b",
        "/?next=//evil.example",  # a query may mention anything; the path is what counts
        "/?next=https://evil.example",
        "/search?q=a%5Cb",
        "/a:b",
        "/.well-known/x",
        "/" + "a" * 2047,
    ],
)
def test_safe_targets_are_returned_verbatim(raw: str) -> None:
    assert safe_return_path(raw, default="/elsewhere") == raw
