"""The ``session`` section: the session secret and lifetimes, the cookie, and where sessions are kept."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gateway.config.reader import Problems, Reader
from gateway.config.schema import SESSION_KEYS
from gateway.protocol.redirect_target import parse_redirect_domain
from gateway.session.store_url import StoreAddress, parse_store_url


@dataclass(frozen=True, slots=True)
class SessionSettings:
    secret: str
    previous_secrets: tuple[str, ...] = ()
    lifetime: float = 8 * 3600
    idle_timeout: float = 3600
    cookie_name: str = "gw_session"
    login_timeout: float = 600
    cookie_domain: str | None = None
    store: StoreAddress = field(default_factory=lambda: StoreAddress("cookie"))
    store_prefix: str = "eidgw:"
    store_timeout: float = 1.0


def _store_address(sr: Reader, problems: Problems) -> StoreAddress:
    value = sr.string("store", "cookie") or "cookie"
    try:
        return parse_store_url(value)
    except ValueError as exc:
        problems.add("session.store", f"{exc} (or omit it to keep sessions in sealed cookies)")
        return StoreAddress("cookie")


def _cookie_domain(sr: Reader, problems: Problems, public_url: str | None) -> str | None:
    """A parent domain for header SSO across sibling hosts; it must contain the public host."""
    domain = sr.string("cookie_domain")
    if domain is None:
        return None
    parsed = parse_redirect_domain(domain.lstrip("."))
    host = (urlsplit(public_url).hostname or "") if public_url else ""
    if parsed is None or parsed[1] is not None or domain.count(".") - domain.startswith(".") < 1:
        problems.add("session.cookie_domain", "must be a domain such as example.com (no port, at least two labels)")
        return None
    bare = domain.lstrip(".").lower()
    if host != bare and not host.endswith("." + bare):
        problems.add("session.cookie_domain", f"must be {host} or a parent domain of it (public_url's host)")
        return None
    return bare


def load_session(session_raw: Mapping[str, Any] | None, problems: Problems, public_url: str | None) -> SessionSettings:
    session_missing = session_raw is None
    if session_raw is None:
        problems.add("session", "is required (at least session.secret); generate one with: eid-gateway keygen")
        session_raw = {}
    problems.unknown_keys("session.", session_raw, SESSION_KEYS)
    sr = Reader(session_raw, "session.", problems)
    secret = sr.string("secret", required=not session_missing) or ""
    previous = sr.strings("previous_secrets")
    for key_path, value in [("session.secret", secret)] + [
        (f"session.previous_secrets[{i}]", v) for i, v in enumerate(previous)
    ]:
        if value and len(value.encode()) < 32:
            problems.add(
                key_path, "must be at least 32 characters of random data; generate one with: eid-gateway keygen"
            )
    session = SessionSettings(
        secret=secret,
        previous_secrets=previous,
        lifetime=sr.duration("lifetime", 8 * 3600),
        idle_timeout=sr.duration("idle_timeout", 3600),
        cookie_name=sr.string("cookie_name", "gw_session") or "gw_session",
        login_timeout=sr.duration("login_timeout", 600),
        cookie_domain=_cookie_domain(sr, problems, public_url),
        store=_store_address(sr, problems),
        store_prefix=sr.string("store_prefix", "eidgw:") or "",
        store_timeout=sr.duration("store_timeout", 1.0),
    )
    if not re.fullmatch(r"[A-Za-z0-9:_.-]{1,64}", session.store_prefix):
        problems.add("session.store_prefix", "must be 1-64 characters of A-Z a-z 0-9 : _ . -")
    if not 0.05 <= session.store_timeout <= 30:
        problems.add("session.store_timeout", "must be between 50ms and 30s")
    if session.idle_timeout > session.lifetime:
        problems.add("session.idle_timeout", "must not be longer than session.lifetime")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", session.cookie_name):
        problems.add("session.cookie_name", "must be 1-32 characters of A-Z a-z 0-9 _ -")
    return session
