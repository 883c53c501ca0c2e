"""Request-path normalisation and public-route matching (pure layer).

The gateway decides "public or protected" and forwards upstream on one and the same
normalised path, so that the checked path is the served path (attacks.md T15, T17;
Envoy CVE-2019-9901, Pomerium CVE-2021-39206). Anything ambiguous is refused instead of
guessed at: the web layer turns :class:`PathError` into a 400.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from urllib.parse import quote, unquote_to_bytes

MAX_PATH_LENGTH = 4096

# RFC 3986 sub-delims plus ":" and "@" (pchar) stay literal when forwarding; everything
# else (space, "?", "#", "%", non-ASCII...) is percent-encoded so the upstream parses
# exactly the path we authorised.
_FORWARD_SAFE = "/-._~!$&'()*+,=:@"

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_SLASH_RUN = re.compile(r"/{2,}")

# Octets that must never appear percent-encoded. An encoded "/" or "\\" is where the
# gateway and an upstream disagree about segment boundaries (..%2f); an encoded "%"
# is double encoding (%252e) that a second decoder would turn into a dot; an encoded
# ";" reopens the matrix-parameter ambiguity refused below.
_FORBIDDEN_ESCAPED = frozenset(b"/\\%;") | frozenset(range(0x20)) | {0x7F}

# Characters a decoded path must not acquire through compatibility normalisation.
_LOOKALIKE_TARGETS = frozenset("./\\%;?#")


class PathError(ValueError):
    """The request path is malformed or ambiguous; the web layer answers 400.

    The message never echoes the path, so it is safe to log.
    """


#: Only paths up to this long are memoised: the memo then holds at most a few MB however many distinct
#: 4 KB paths a client sends (every request path is client-chosen).
_MEMO_MAX_LENGTH = 256


def normalize_request_path(raw_path: str) -> str:
    """Return the one path the gateway authorises and forwards (see ``_normalize``); memoised for short
    paths, since the same few paths arrive on every request."""
    if len(raw_path) <= _MEMO_MAX_LENGTH:
        return _normalize_memoised(raw_path)
    return _normalize(raw_path)


def _normalize(raw_path: str) -> str:
    """Return the one path the gateway authorises and forwards.

    ``raw_path`` is the raw, still percent-encoded path of the request target with the
    query already split off. It is validated, percent-decoded exactly once (UTF-8),
    stripped of dot segments per RFC 3986 §5.2.4 and has runs of "/" collapsed.
    Case is preserved.
    """
    if len(raw_path) > MAX_PATH_LENGTH:
        raise PathError("path too long")
    if not raw_path.startswith("/"):
        raise PathError("path must start with '/'")
    for char in raw_path:
        if not "\x21" <= char <= "\x7e":
            raise PathError("path contains a control, space or non-ASCII character")
    if "\\" in raw_path:
        raise PathError("path contains a backslash")
    if "#" in raw_path:
        raise PathError("path contains a fragment")
    if "?" in raw_path:
        # The caller must split the query off first; guessing here could let a query
        # string take part in the public-route decision (T17).
        raise PathError("path contains a query")
    if ";" in raw_path:
        raise PathError("path contains matrix parameters")
    _check_escapes(raw_path)

    try:
        decoded = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        # Strict decoding also refuses overlong forms such as %C0%AE for ".".
        raise PathError("path is not valid UTF-8") from None
    if any(unicodedata.category(char) == "Cc" for char in decoded):
        # C1 controls (U+0080..U+009F) only show up after UTF-8 decoding.
        raise PathError("path contains a control character")
    if any(_is_delimiter_lookalike(char) for char in decoded if not char.isascii()):
        raise PathError("path contains a character that compatibility-normalises to a delimiter")

    # Collapse slashes before removing dot segments: "/public//../x" then means "/x",
    # the reading of servers that merge slashes, instead of "/public/x".
    normalised = remove_dot_segments(_SLASH_RUN.sub("/", decoded))
    return _SLASH_RUN.sub("/", normalised) or "/"


_normalize_memoised = functools.lru_cache(maxsize=4096)(_normalize)


def _check_escapes(raw_path: str) -> None:
    """Refuse malformed escapes and escapes of octets with a structural meaning."""
    if raw_path.count("%") != len(_ESCAPE.findall(raw_path)):
        raise PathError("path contains a malformed percent-escape")
    for match in _ESCAPE.finditer(raw_path):
        if int(match.group(1), 16) in _FORBIDDEN_ESCAPED:
            raise PathError("path contains a forbidden percent-escape")


def _is_delimiter_lookalike(char: str) -> bool:
    """Tell whether NFKC turns ``char`` into a path delimiter or dot.

    An upstream that applies compatibility normalisation (IIS "best fit", some Java
    stacks) would read "/public/\uff0e\uff0e\uff0fprivate" as "/public/../private",
    a path the gateway judged public.
    """
    return not _LOOKALIKE_TARGETS.isdisjoint(unicodedata.normalize("NFKC", char))


def remove_dot_segments(path: str) -> str:
    """Remove "." and ".." segments as RFC 3986 §5.2.4 does; ".." never climbs above "/".

    Shared with the return-target validator, which needs the browser's view of a path.
    """
    output: list[str] = []
    rest = path
    while rest:
        if rest.startswith("../"):
            rest = rest[3:]
        elif rest.startswith(("./", "/./")):
            rest = rest[2:]
        elif rest == "/.":
            rest = "/"
        elif rest.startswith("/../"):
            rest = rest[3:]
            if output:
                output.pop()
        elif rest == "/..":
            rest = "/"
            if output:
                output.pop()
        elif rest in {".", ".."}:
            rest = ""
        else:
            # Move the first segment, with its leading "/" if any, to the output.
            end = rest.find("/", 1)
            if end == -1:
                end = len(rest)
            output.append(rest[:end])
            rest = rest[end:]
    return "".join(output)


def encode_path(path: str) -> str:
    """Percent-encode a normalised path for the upstream request line.

    ``normalize_request_path(encode_path(p)) == p`` for every normalised ``p``, so the
    upstream decodes to exactly the path that was authorised.
    """
    return quote(path, safe=_FORWARD_SAFE)


def is_public(path: str, public_paths: Sequence[str]) -> bool:
    """Tell whether a normalised path is configured as public.

    A pattern ending in "/" matches that prefix ("/static/" matches "/static/a.css"
    but neither "/static" nor "/staticx"); any other pattern matches only itself.
    The match is case-sensitive and anchored, never a regex or substring search (T17).
    """
    for pattern in public_paths:
        if pattern.endswith("/"):
            if path.startswith(pattern):
                return True
        elif path == pattern:
            return True
    return False


def validate_public_path_pattern(pattern: str) -> str | None:
    """Return None for a usable public-path pattern, else a message for the operator.

    Patterns are compared with normalised, decoded paths, so anything a normalised path
    can never contain (escapes, dot segments, "//") would silently never match, and
    wildcards are not supported at all.
    """
    if not pattern.startswith("/"):
        return "must start with '/'"
    if pattern == "/":
        return "'/' would make every path public"
    for char in pattern:
        if char.isspace() or unicodedata.category(char) == "Cc":
            return "must not contain whitespace or control characters"
    for char in "*?#%\\;":
        if char in pattern:
            return f"must not contain {char!r}; patterns are literal, decoded paths"
    if "//" in pattern:
        return "must not contain '//'; request paths are matched after collapsing slashes"
    segments = pattern.split("/")
    if ".." in pattern or "." in segments:
        return "must not contain dot segments; request paths are matched after removing them"
    return None
