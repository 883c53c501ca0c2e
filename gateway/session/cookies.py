"""Session and login cookies (web layer): read them from a request, write them on a response.

Every gateway cookie is read through one reader of all the request's Cookie lines
(protocol/cookie_header.py, via ``read_cookie``). A cookie name sent more than once is ambiguous: neither
value is used, it is counted (``gateway_cookie_ambiguous_total``), and the session is treated as refused
and cleared (every variant this gateway can set). A cookie the store refuses is treated as absent and
cleared; it never yields partial identity. A store that cannot answer raises StoreUnavailableError (503):
never "no session", never "logged in".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Literal

from aiohttp import hdrs, web

from gateway import logs
from gateway.errors import GatewayError, SessionTooLargeError, StateMismatchError
from gateway.protocol.cookie_header import CookieHeader, CookieLookup, parse_cookie_lines
from gateway.runtime import Runtime
from gateway.session.codec import SealError
from gateway.session.model import PendingLogin, Session
from gateway.session.store import NO_COOKIE, Loaded

LOGIN_PURPOSE = "login"
#: The rejection of a session cookie sent more than once (a Loaded.rejection; see read_session).
AMBIGUOUS = "ambiguous"
CookieKind = Literal["session", "login", "poll"]
_COOKIES = web.RequestKey("gateway_cookie_header", CookieHeader)
_COUNTED = web.RequestKey("gateway_cookie_ambiguity_counted", set)


def request_cookies(request: web.Request) -> CookieHeader:
    """Every Cookie line of the request, parsed once per request."""
    parsed = request.get(_COOKIES)
    if parsed is None:
        parsed = parse_cookie_lines(request.headers.getall(hdrs.COOKIE, []))
        request[_COOKIES] = parsed
    return parsed


def read_cookie(request: web.Request, rt: Runtime, kind: CookieKind) -> CookieLookup:
    """The gateway's ``kind`` cookie in this request: absent, one value, or ambiguous (counted and logged
    once per request)."""
    name = {"session": rt.session_cookie, "login": rt.login_cookie, "poll": rt.poll_cookie}[kind]
    lookup = request_cookies(request).lookup(name)
    if lookup.ambiguous:
        counted: set[str] = request.setdefault(_COUNTED, set())
        if kind not in counted:
            counted.add(kind)
            rt.metrics.cookie_ambiguous.labels(kind).inc()
            logs.event("cookie_ambiguous", logging.WARNING, cookie=kind)
    return lookup


def refuse_ambiguous(request: web.Request, rt: Runtime, kind: CookieKind) -> str | None:
    """The one value of a login-step cookie (login state, poll binding); None when absent. Two of them
    refuse the step: StateMismatchError, never one of the two picked."""
    lookup = read_cookie(request, rt, kind)
    if lookup.ambiguous:
        raise StateMismatchError("ambiguous_cookie")
    return lookup.value


async def read_session(request: web.Request, rt: Runtime) -> Loaded:
    """The request's session, or why its cookie was refused; StoreUnavailableError if the store is down.
    A session cookie sent twice is refused as ``ambiguous``, whatever the two values are."""
    lookup = read_cookie(request, rt, "session")
    if lookup.ambiguous:
        return Loaded(None, rejection=AMBIGUOUS)
    value = lookup.value
    if not value:
        return NO_COOKIE
    loaded = await rt.store.load(value, rt.clock())
    if loaded.rejection is not None:
        rt.metrics.session_rejections.labels(loaded.rejection).inc()
    return loaded


#: What a browser keeps of one Set-Cookie (name, value and attributes; RFC 6265 §6.1).
MAX_COOKIE_BYTES = 4096


async def issue_session(rt: Runtime, session: Session) -> Callable[[web.StreamResponse], None]:
    """Store the session now; returns what sets its cookie on the response (callable before prepare).

    The Set-Cookie line is rendered here once, so a setter that is reused (flows/sessions.py) costs one
    header per response and nothing else."""
    return (await _issue(rt, session))[1]


async def _issue(rt: Runtime, session: Session) -> tuple[str, Callable[[web.StreamResponse], None]]:
    now = rt.clock()
    value = await rt.store.save(session, now)
    jar: SimpleCookie = SimpleCookie()
    jar[rt.session_cookie] = value
    morsel = jar[rt.session_cookie]
    morsel["path"] = "/"
    if rt.settings.session.cookie_domain:
        morsel["domain"] = rt.settings.session.cookie_domain
    morsel["max-age"] = str(rt.store.cookie_max_age(session, now))
    morsel["httponly"] = True
    if rt.settings.secure_cookies:
        morsel["secure"] = True
    morsel["samesite"] = "Lax"
    header = morsel.OutputString()
    if len(header) > MAX_COOKIE_BYTES:
        # Browsers drop a larger cookie without a word (RFC 6265 §6.1 asks them to keep 4096 bytes), and the
        # person would be sent to the login again and again: refuse it here, loudly, naming the fix.
        logs.event(
            "session_too_large",
            logging.ERROR,
            bytes=len(header),
            provider=session.identity.idp,
            detail=f"the session cookie would be {len(header)} bytes, more than the {MAX_COOKIE_BYTES} a browser "
            "keeps; set session.store to a Redis URL (docs/sessions.md), whose cookie is under 100 bytes",
        )
        raise SessionTooLargeError("session_too_large")

    def set_cookie(response: web.StreamResponse) -> None:
        response.headers.add(hdrs.SET_COOKIE, header)

    return value, set_cookie


async def write_session(response: web.StreamResponse, rt: Runtime, session: Session) -> None:
    """A new login's session cookie on the response. Once the response is on its way (the task runs when
    the handler's task yields), what the browser's first request would pay for is done ahead: the cookie
    opened once (cookie store: cached), the identity headers encoded and the assertion signed (cached per
    session id, so it still expires on time and is never another session's). bench/ row 4c."""
    value, set_cookie = await _issue(rt, session)
    set_cookie(response)
    task = asyncio.ensure_future(_prepare_first_request(rt, value, session))
    _PREPARING.add(task)
    task.add_done_callback(_PREPARING.discard)


_PREPARING: set[asyncio.Task[None]] = set()


async def _prepare_first_request(rt: Runtime, cookie: str, session: Session) -> None:
    if rt.store.name == "cookie":
        # Opening the cookie is local work its cache then spares the first request. A shared store would
        # cost a round trip here and the first request still makes its own, so it is left alone.
        try:
            loaded = await rt.store.load(cookie, rt.clock())
        except GatewayError:  # only a head start: the first request does it all again
            return
        if loaded.session is None or loaded.session.sid != session.sid:
            return  # ended meanwhile (logout, back-channel): nothing is signed for it
    # Cached by session id only: every request still loads and checks its session before using these.
    releases = rt.table.releases
    if len(releases) == 1:  # with many routes, which one comes first is unknown: each signs on first use
        for release in releases.values():
            release.header_pairs(session.sid, session.identity)
            release.assertion(session.sid, session.identity, now=rt.clock())


def clear_session(response: web.StreamResponse, rt: Runtime) -> None:
    """Expire the session cookie: the host-only one and, with ``session.cookie_domain``, the domain one too
    (a browser that holds both sends the name twice: ambiguous, see read_session)."""
    domain = rt.settings.session.cookie_domain
    for variant in (None, domain) if domain else (None,):
        jar: SimpleCookie = SimpleCookie()
        jar[rt.session_cookie] = ""
        morsel = jar[rt.session_cookie]
        morsel["path"] = "/"
        if variant:
            morsel["domain"] = variant
        morsel["max-age"] = "0"
        morsel["expires"] = "Thu, 01 Jan 1970 00:00:00 GMT"
        morsel["httponly"] = True
        if rt.settings.secure_cookies:
            morsel["secure"] = True
        morsel["samesite"] = "Lax"
        response.headers.add(hdrs.SET_COOKIE, morsel.OutputString())


def session_cookie_sent(request: web.Request, rt: Runtime) -> bool:
    """The browser sent a session cookie (one, or several: then all of them are to be cleared)."""
    return read_cookie(request, rt, "session").presence != "absent"


def presented_session_cookies(request: web.Request, rt: Runtime) -> tuple[str, ...]:
    """Every session cookie value the browser sent: what logout and a new login end, all of them when the
    name came twice (ending a session never authenticates the request as it)."""
    return request_cookies(request).values(rt.session_cookie)


def read_pending_logins(request: web.Request, rt: Runtime) -> list[PendingLogin]:
    """The logins in flight in this browser. A login cookie sent twice raises StateMismatchError."""
    value = refuse_ambiguous(request, rt, "login")
    if not value:
        return []
    try:
        payload = rt.keyring.unseal(value, purpose=LOGIN_PURPOSE, now=rt.clock())
    except SealError:
        return []
    items = payload.get("p")
    if not isinstance(items, list):
        return []
    now = rt.clock()
    pending = [p for p in (PendingLogin.from_payload(i) for i in items) if p is not None]
    return [p for p in pending if now - p.created < rt.settings.session.login_timeout]


def write_pending_logins(response: web.StreamResponse, rt: Runtime, pending: list[PendingLogin]) -> None:
    if not pending:
        response.del_cookie(rt.login_cookie, path="/", secure=rt.settings.secure_cookies, httponly=True)
        return
    expires = max(p.created for p in pending) + rt.settings.session.login_timeout
    value = rt.keyring.seal({"p": [p.to_payload() for p in pending], "exp": expires}, purpose=LOGIN_PURPOSE)
    # form_post callbacks are cross-site POSTs: on https the login cookie must be SameSite=None to come back.
    secure = rt.settings.secure_cookies
    response.set_cookie(
        rt.login_cookie,
        value,
        path="/",
        httponly=True,
        secure=secure,
        samesite="None" if secure else "Lax",  # browsers refuse SameSite=None without Secure
        max_age=int(rt.settings.session.login_timeout),
    )
