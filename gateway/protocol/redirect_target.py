"""Validation of the post-login and post-logout return target (pure layer).

Only a same-origin relative path (optionally with a query) is ever redirected to;
everything else falls back to a default. This is the T01/T02/T04 defence in attacks.md
(oauth2-proxy CVE-2020-5233 and GHSA-j7px-6hwj-hpjg, mod_auth_openidc PR #453).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from gateway.protocol.paths import remove_dot_segments

MAX_RETURN_PATH_LENGTH = 2048

# Browsers and upstream frameworks decode more than once; three rounds cover
# triple encoding, and a value that still changes after that is refused outright.
_DECODE_ROUNDS = 3


def safe_return_path(raw: str | None, *, default: str = "/") -> str:
    """Return ``raw`` unchanged if it is a safe same-origin path, else ``default``.

    The raw value is returned (never a decoded form) because it is what was checked.
    It is judged as a browser would read it and also after each of up to three rounds
    of percent-decoding, in case some later hop decodes it again: in every reading
    it must have no control characters or whitespace other than a plain space, start
    with exactly one "/" once backslashes are folded to "/" (WHATWG URL parsing does
    the same fold) and dot segments are removed, and have no scheme or authority.
    """
    if not raw or len(raw) > MAX_RETURN_PATH_LENGTH:
        return default
    # The value ends up verbatim in a Location header, which must be ASCII
    # (RFC 9110 §5.5); a fragment has no business in a server-side redirect target.
    if not raw.isascii() or "#" in raw:
        return default

    readings = [raw]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(readings[-1])
        if decoded == readings[-1]:
            break
        readings.append(decoded)
    else:
        if unquote(readings[-1]) != readings[-1]:
            return default

    if all(_is_local_path(reading) for reading in readings):
        return raw
    return default


def _is_local_path(value: str) -> bool:
    """Tell whether one reading of the target stays on this origin."""
    for char in value:
        # Browsers silently drop TAB/CR/LF inside URLs, which is how "/\t/evil" becomes
        # "//evil"; other Unicode spaces have similar quirks, so only " " is tolerated.
        if (char.isspace() and char != " ") or ord(char) < 0x20 or ord(char) == 0x7F:
            return False
    folded = value.replace("\\", "/")
    path = folded.split("?", 1)[0]
    # "/./\evil" and "/./../..//evil" become "//evil" once dot segments are removed,
    # which is a network-path reference for whoever resolves it next.
    for candidate in (folded, remove_dot_segments(path)):
        if not candidate.startswith("/") or candidate.startswith("//"):
            return False
    try:
        parts = urlsplit(folded)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc


def parse_redirect_domain(entry: str) -> tuple[str, int | None] | None:
    """Parse an allow-list entry: "app.example.com", ".example.com" (any subdomain), optional ":port"."""
    host, _, port = entry.lower().partition(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return None
    bare = host[1:] if host.startswith(".") else host
    labels = bare.split(".")
    if not bare or not all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels):
        return None
    if not bare.isascii():
        return None
    return host, int(port) if port else None


def _host_allowed(host: str, port: int, allowed: Sequence[tuple[str, int | None]], default_port: int) -> bool:
    for pattern, allowed_port in allowed:
        if port != (allowed_port or default_port):
            continue
        # Exact host, or a dot-boundary suffix: ".example.com" allows "a.example.com", never
        # "evil-example.com" or "example.com.evil" (attacks.md T02).
        if host == pattern or (pattern.startswith(".") and host.endswith(pattern) and len(host) > len(pattern)):
            return True
    return False


def safe_return_target(
    raw: str | None,
    *,
    scheme: str,
    allowed: Sequence[tuple[str, int | None]] = (),
    default: str = "/",
) -> str:
    """Like safe_return_path, but an absolute URL on an allow-listed host is accepted too (header SSO).

    The URL must use ``scheme`` (the gateway's own), carry no userinfo, encoded characters or
    backslashes in its authority, and its path must pass the same checks as a relative target.
    """
    relative = safe_return_path(raw, default="")
    if relative:
        return relative
    if not raw or not allowed or len(raw) > MAX_RETURN_PATH_LENGTH or not raw.isascii():
        return default
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in raw) or "\\" in raw or "#" in raw:
        return default
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return default
    if parts.scheme != scheme or not parts.netloc or "@" in parts.netloc or "%" in parts.netloc:
        return default
    host = parts.hostname or ""
    if not host or host.endswith(".") or host != parts.netloc.split(":")[0].lower():
        return default
    default_port = 443 if scheme == "https" else 80
    if not _host_allowed(host, port or default_port, allowed, default_port):
        return default
    path = parts.path or "/"
    rest = path + (f"?{parts.query}" if parts.query else "")
    if safe_return_path(rest, default="") != rest:
        return default
    return raw
