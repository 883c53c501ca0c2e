"""Path normalisation and public-route matching: attacks.md T15 (traversal) and T17 (smuggling)."""

from __future__ import annotations

import pytest

from gateway.protocol import paths
from gateway.protocol.paths import (
    PathError,
    encode_path,
    is_public,
    normalize_request_path,
    remove_dot_segments,
    validate_public_path_pattern,
)

PUBLIC = ["/public/"]


# --- T15 / T17: every attack either fails to parse or lands on a protected path -------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # T15
        ("/public/../private/x", "/private/x"),
        ("/public/%2e%2e/private/x", "/private/x"),
        ("/public/%2E%2E%2Fprivate/x", PathError),
        ("/public/..%2fprivate/x", PathError),
        ("/public/.%2e/private/x", "/private/x"),
        ("/public/%252e%252e/private/x", PathError),
        ("/public/..\\private\\x", PathError),
        ("/public/..%5cprivate/x", PathError),
        ("/public;/../private/x", PathError),
        ("/public/%00/../private/x", PathError),
        ("/PUBLIC/../private/x", "/private/x"),
        # T17 (the web layer splits the query off; a "?" reaching us is refused)
        ("/private/x?next=/public/", PathError),
        ("/private/x%23/public/", "/private/x#/public/"),
        ("/private/x#/public/", PathError),
        ("/private/x;/public/", PathError),
        # variations on the same themes
        ("/public/%2e%2e%2f..%2fprivate/x", PathError),
        ("/public/%2e./private/x", "/private/x"),
        ("/public/..%252fprivate/x", PathError),
        ("/public/%25%32%65%25%32%65/private/x", PathError),
        ("/public/%c0%ae%c0%ae/private/x", PathError),  # overlong UTF-8 "."
        ("/public/%e0%80%ae%e0%80%ae/private/x", PathError),  # 3-byte overlong "."
        ("/public/..%c0%afprivate/x", PathError),  # overlong "/"
        # compatibility forms an upstream might NFKC-normalise into delimiters
        ("/public/..%ef%bc%8fprivate/x", PathError),  # U+FF0F fullwidth solidus
        ("/public/%ef%bc%8e%ef%bc%8e/private/x", PathError),  # U+FF0E fullwidth full stop
        ("/public/%e2%80%a5/private/x", PathError),  # U+2025 two dot leader -> ".."
        ("/public/..%ef%bc%bcprivate/x", PathError),  # U+FF3C fullwidth reverse solidus
        ("/public/%ef%b9%92%ef%b9%92/private/x", PathError),  # U+FE52 small full stop
        ("/public/x%ef%bc%9b/../private/x", PathError),  # U+FF1B fullwidth semicolon
        ("/public/a%e2%84%80c", PathError),  # U+2100 account of -> "a/c"
        ("/public//../private/x", "/private/x"),
        ("/public/./../private/x", "/private/x"),
        ("/public/x/../../private/x", "/private/x"),
        ("/public/../../../../private/x", "/private/x"),
        ("//public/../private/x", "/private/x"),
        ("/public/..", "/"),
        ("/public/%2e%2e", "/"),
        ("/public", "/public"),
        ("/publicx/y", "/publicx/y"),
        ("/Public/x", "/Public/x"),
        ("/public%2f/x", PathError),
        ("/public%2F", PathError),
        ("/public/%09/../private/x", PathError),
        ("/public/%0d%0a/../private/x", PathError),
        ("/public/%7f/../private/x", PathError),
        ("/public/%c2%85/../private/x", PathError),  # C1 control NEL
        ("/public/%3b/../private/x", PathError),
        ("/public/\t/../private/x", PathError),
        ("/public/ /../private/x", PathError),
        ("/public/\x00/../private/x", PathError),
        ("/public/%zz/../private/x", PathError),
        ("/public/%2/../private/x", PathError),
        ("/public/%/../private/x", PathError),
        ("/public/%ff/../private/x", PathError),  # invalid UTF-8
        ("public/../private/x", PathError),
        ("", PathError),
        ("*", PathError),
        ("http://app.example.test/public/../private/x", PathError),
    ],
)
def test_attack_paths_never_reach_public(raw: str, expected: str | type[PathError]) -> None:
    if expected is PathError:
        with pytest.raises(PathError):
            normalize_request_path(raw)
        return
    normalised = normalize_request_path(raw)
    assert normalised == expected
    assert not is_public(normalised, PUBLIC)


# --- positives ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/public/", "/public/"),
        ("/public/a.css", "/public/a.css"),
        ("/public/a/../b", "/public/b"),
        ("/public/./a", "/public/a"),
        ("/public/a/.", "/public/a/"),
        ("/public//a", "/public/a"),
        ("/a/./b", "/a/b"),
        ("//a", "/a"),
        ("///a///b//", "/a/b/"),
        ("/public/%C3%85sa", "/public/Åsa"),
        ("/public/%c3%85sa", "/public/Åsa"),
        ("/public/a%20b", "/public/a b"),
        ("/public/a%3Fb", "/public/a?b"),
        ("/public/~user/!$&'()*+,=:@", "/public/~user/!$&'()*+,=:@"),
        ("/public/%41", "/public/A"),
        ("/public/..a/.b/a..", "/public/..a/.b/a.."),
        ("/public/...", "/public/..."),
    ],
)
def test_normalize_accepts(raw: str, expected: str) -> None:
    assert normalize_request_path(raw) == expected


def test_normalize_length_limit() -> None:
    assert normalize_request_path("/" + "a" * 4095) == "/" + "a" * 4095
    with pytest.raises(PathError):
        normalize_request_path("/" + "a" * 4096)


@pytest.mark.parametrize("char", ["Å", "\u2028", "\x7f", "\x80", "\x1f", " "])
def test_normalize_rejects_raw_non_ascii_and_controls(char: str) -> None:
    with pytest.raises(PathError):
        normalize_request_path(f"/a{char}b")


def test_path_error_is_value_error_and_does_not_echo_input() -> None:
    with pytest.raises(PathError) as info:
        normalize_request_path("/secret-token%zz")
    assert isinstance(info.value, ValueError)
    assert "secret-token" not in str(info.value)


# --- encode_path ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("/private/x", "/private/x"),
        ("/public/Åsa", "/public/%C3%85sa"),
        ("/a b", "/a%20b"),
        ("/a?b", "/a%3Fb"),
        ("/x#/public/", "/x%23/public/"),
        ("/~user/!$&'()*+,=:@-._", "/~user/!$&'()*+,=:@-._"),
        ('/<>"{}|^`', "/%3C%3E%22%7B%7D%7C%5E%60"),
        ("/%", "/%25"),
        ("/;", "/%3B"),
        ("/\\", "/%5C"),
    ],
)
def test_encode_path(path: str, expected: str) -> None:
    assert encode_path(path) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "/",
        "/private/x",
        "/public/../private/x",
        "/public/%2e%2e/private/x",
        "/private/x%23/public/",
        "/public/%C3%85sa%20%C3%96berg",
        "/public/a%3Fb",
        "/a/%7Eb/%41",
        '/<>{}|^`"',
        "/~user/!$&'()*+,=:@",
        "//a/./b/../c/",
    ],
)
def test_encode_path_round_trips(raw: str) -> None:
    normalised = normalize_request_path(raw)
    encoded = encode_path(normalised)
    # What the upstream decodes is exactly what was authorised, and re-encoding is stable.
    assert normalize_request_path(encoded) == normalised
    assert encode_path(normalize_request_path(encoded)) == encoded


# --- is_public ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        ("/healthz", ["/healthz"], True),
        ("/healthz/", ["/healthz"], False),
        ("/healthz/x", ["/healthz"], False),
        ("/healthzx", ["/healthz"], False),
        ("/HEALTHZ", ["/healthz"], False),
        ("/static/a.css", ["/static/"], True),
        ("/static/", ["/static/"], True),
        ("/static/a/b/c.js", ["/static/"], True),
        ("/static", ["/static/"], False),
        ("/staticx", ["/static/"], False),
        ("/Static/a.css", ["/static/"], False),
        ("/private/x", ["/healthz", "/static/", "/public/"], False),
        ("/public/x", ["/healthz", "/static/", "/public/"], True),
        ("/healthz", ["/static/", "/healthz"], True),
        ("/private/x#/public/", ["/public/"], False),
        ("/private/x?next=/public/", ["/public/"], False),
        ("/x/public/", ["/public/"], False),
        ("/anything", [], False),
        ("/", [], False),
    ],
)
def test_is_public(path: str, patterns: list[str], expected: bool) -> None:
    assert is_public(path, patterns) is expected


# --- validate_public_path_pattern -----------------------------------------------------


@pytest.mark.parametrize(
    "pattern", ["/healthz", "/static/", "/public/", "/a/b/c", "/Åsa/", "/.well-known/jwks.json"]
)
def test_validate_public_path_pattern_accepts(pattern: str) -> None:
    assert validate_public_path_pattern(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("/", "'/' would make every path public"),
        ("", "must start with '/'"),
        ("healthz", "must start with '/'"),
        ("*/x", "must start with '/'"),
        ("/static/*", "must not contain '*'; patterns are literal, decoded paths"),
        ("/a?b", "must not contain '?'; patterns are literal, decoded paths"),
        ("/a#b", "must not contain '#'; patterns are literal, decoded paths"),
        ("/a%20b", "must not contain '%'; patterns are literal, decoded paths"),
        ("/a\\b", "must not contain '\\\\'; patterns are literal, decoded paths"),
        ("/a;b", "must not contain ';'; patterns are literal, decoded paths"),
        ("/a b", "must not contain whitespace or control characters"),
        ("/a\tb", "must not contain whitespace or control characters"),
        ("/a\nb", "must not contain whitespace or control characters"),
        ("/a\x00b", "must not contain whitespace or control characters"),
        ("/a\u00a0b", "must not contain whitespace or control characters"),
        (
            "/public/../private/",
            "must not contain dot segments; request paths are matched after removing them",
        ),
        ("/public/..", "must not contain dot segments; request paths are matched after removing them"),
        ("/public/./x", "must not contain dot segments; request paths are matched after removing them"),
        ("/a..b/", "must not contain dot segments; request paths are matched after removing them"),
        ("//public/", "must not contain '//'; request paths are matched after collapsing slashes"),
        ("/public//", "must not contain '//'; request paths are matched after collapsing slashes"),
    ],
)
def test_validate_public_path_pattern_refuses(pattern: str, message: str) -> None:
    assert validate_public_path_pattern(pattern) == message


# --- remove_dot_segments (RFC 3986 §5.2.4 and §5.4 examples) -------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c/./../../g", "/a/g"),
        ("mid/content=5/../6", "mid/6"),
        ("/b/c/d;p/../../g", "/b/g"),
        ("/../g", "/g"),
        ("/./g", "/g"),
        ("/g.", "/g."),
        ("/.g", "/.g"),
        ("/g..", "/g.."),
        ("/..g", "/..g"),
        ("/b/c/./../g", "/b/g"),
        ("/b/c/./g/.", "/b/c/g/"),
        ("/b/c/g/./h", "/b/c/g/h"),
        ("/b/c/g/../h", "/b/c/h"),
        ("/.", "/"),
        ("/..", "/"),
        ("/a/..", "/"),
        (".", ""),
        ("..", ""),
        ("../a", "a"),
        ("./a", "a"),
        ("", ""),
        ("/./\\evil", "/\\evil"),
        ("/.//evil", "//evil"),
        ("/./../..//evil", "//evil"),
        ("/a//../b", "/a/b"),
    ],
)
def test_remove_dot_segments(path: str, expected: str) -> None:
    assert remove_dot_segments(path) == expected


def test_only_short_paths_are_memoised() -> None:
    """Every request path is client-chosen: long ones must not fill the memo (4096 entries of 4 KB each)."""
    paths._normalize_memoised.cache_clear()
    assert normalize_request_path("/" + "a" * 4000) == "/" + "a" * 4000
    assert normalize_request_path("/b/../" + "c" * 300) == "/" + "c" * 300
    assert paths._normalize_memoised.cache_info().currsize == 0
    assert normalize_request_path("/app/./page") == "/app/page"
    assert normalize_request_path("/app/./page") == "/app/page"
    assert paths._normalize_memoised.cache_info().currsize == 1
    with pytest.raises(PathError):
        normalize_request_path("/a%2Fb")  # refusals are not memoised and stay refusals
    with pytest.raises(PathError):
        normalize_request_path("/a%2Fb")
