"""The session of a request, made current: loaded from the store, refreshed at the provider when its
token is due, its sliding expiry renewed. Used by the proxy, /_auth/verify and the /_auth pages alike.

A refresh happens once per session even under concurrent requests: in this process concurrent callers
share one future, across replicas a short store lock lets one replica refresh while the others wait for
its result. A refused refresh ends the session; an unreachable provider fails the request closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from gateway import logs
from gateway.errors import GatewayError, IdpUnavailableError, TokenValidationError
from gateway.protocol import oidc
from gateway.runtime import Runtime
from gateway.session.cookies import AMBIGUOUS, issue_session, presented_session_cookies, read_session
from gateway.session.model import Session

SetCookie = Callable[[web.StreamResponse], None]
#: How long a finished refresh is remembered for requests that still carry the pre-refresh cookie.
RECENT_REFRESH_SECONDS = 60.0
_WAIT_STEP = 0.05
#: A renewed cookie is at most this much older than a fresh one would be (the renewal interval is a minute).
REISSUE_MEMO_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Current:
    session: Session | None
    rejection: str | None = None
    set_cookie: SetCookie | None = None  # apply to the response: the session's cookie changed


async def current_session(request: web.Request, rt: Runtime) -> Current:
    loaded = await read_session(request, rt)
    session = loaded.session
    if session is None:
        return Current(None, loaded.rejection)
    now = rt.clock()
    if session.refresh_due(now):
        refreshed = await refresh_once(rt, session)
        if refreshed is None:
            return Current(None, "refresh_refused")
        rt.reissued_cookies.pop(session.sid, None)  # a renewal sealed before the refresh holds the old token
        # A Redis session keeps its cookie (the record changed); a cookie session is a new cookie.
        return Current(refreshed, set_cookie=await issue_session(rt, refreshed) if refreshed.handle is None else None)
    if loaded.reissue:
        return Current(session, set_cookie=await _reissued(rt, session, now))
    return Current(session)


async def _reissued(rt: Runtime, session: Session, now: float) -> SetCookie:
    """The renewed cookie of a session, sealed at most once per REISSUE_MEMO_SECONDS: a client that keeps
    sending the pre-renewal cookie (concurrent requests, or one that ignores Set-Cookie) gets the same
    renewed cookie instead of a new seal on every request."""
    memo = rt.reissued_cookies.get(session.sid)
    # Never longer than the renewal interval itself, so a short idle timeout still slides.
    window = min(REISSUE_MEMO_SECONDS, session.idle_timeout / 10)
    if isinstance(memo, tuple) and now - memo[0] < window:
        return memo[1]  # type: ignore[no-any-return]
    set_cookie = await issue_session(rt, session)
    rt.reissued_cookies.put(session.sid, (now, set_cookie))
    return set_cookie


async def presented_sessions(request: web.Request, rt: Runtime) -> list[Session]:
    """The session this request presents; with the session cookie sent twice, every valid one of them.
    Only for ending sessions (logout, a new login): ending one authenticates nothing, and a session left
    running would outlive the logout that was meant for it (attacks.md T39)."""
    loaded = await read_session(request, rt)
    if loaded.rejection != AMBIGUOUS:
        return [loaded.session] if loaded.session is not None else []
    sessions: list[Session] = []
    for value in presented_session_cookies(request, rt):
        session = (await rt.store.load(value, rt.clock())).session
        if session is not None and all(s.sid != session.sid for s in sessions):
            sessions.append(session)
    return sessions


async def end_presented_session(request: web.Request, rt: Runtime) -> None:
    """A new login ends the session this browser had, in the store too (attacks.md T37): a copy of the old
    cookie must not outlive the login that replaced it. With the cookie sent twice, both end."""
    for session in await presented_sessions(request, rt):
        await rt.store.end(session, rt.clock())
        rt.forget_session(session.sid)


async def refresh_once(rt: Runtime, session: Session) -> Session | None:
    """The refreshed session, or None when the provider refused (the session is then ended)."""
    assert session.refresh_token is not None
    recent_key = session.sid + ":" + session.refresh_token
    recent = rt.recent_refreshes.get(recent_key)
    if isinstance(recent, tuple) and recent[0] > rt.clock():
        return recent[1]  # type: ignore[no-any-return]
    running = rt.refreshing.get(session.sid)
    if running is None:
        running = asyncio.ensure_future(_refresh(rt, session))
        rt.refreshing[session.sid] = running
        running.add_done_callback(lambda _f: rt.refreshing.pop(session.sid, None))
    result = await asyncio.shield(running)
    rt.recent_refreshes.put(recent_key, (rt.clock() + RECENT_REFRESH_SECONDS, result))
    return result


async def _refresh(rt: Runtime, session: Session) -> Session | None:
    provider = session.identity.idp
    client = rt.providers.get(provider)
    lock_name = "refresh:" + session.sid
    timeout = client.settings.timeout if client is not None else 10.0
    token = await rt.store.lock(lock_name, ttl=timeout + 5)
    if token is None:
        return await _await_other_replica(rt, session, deadline=rt.clock() + timeout + 5)
    try:
        # Another replica may have finished just before this one took the lock.
        current = await _reload(rt, session)
        if current is None or not current.refresh_due(rt.clock()):
            return current
        if client is None:
            await _end(rt, current, "unknown_provider")
            return None
        try:
            tokens = await client.refresh(current.refresh_token or "")
            if tokens.id_token is not None:
                claims = await client.verify_id_token(tokens.id_token, nonce=None)
                if claims.get("sub") != current.identity.sub:  # OIDC Core §12.2
                    raise TokenValidationError("refresh_sub_changed")
        except TokenValidationError as exc:
            rt.metrics.token_refreshes.labels(provider, exc.reason).inc()
            await _end(rt, current, exc.reason)
            return None
        except GatewayError as exc:
            rt.metrics.token_refreshes.labels(provider, "unavailable").inc()
            logs.event("refresh_failed", logging.WARNING, provider=provider, reason=exc.reason)
            raise IdpUnavailableError("refresh_unavailable") from exc
        now = rt.clock()
        refreshed = current.refreshed(
            refresh_token=tokens.refresh_token or current.refresh_token or "",
            refresh_at=oidc.refresh_deadline(now, tokens.expires_in),
        )
        if refreshed.handle is not None:
            await rt.store.save(refreshed, now)
        rt.metrics.token_refreshes.labels(provider, "ok").inc()
        return refreshed
    finally:
        await rt.store.unlock(lock_name, token)


async def _reload(rt: Runtime, session: Session) -> Session | None:
    """The stored session again (the Redis record may have changed); a cookie session is its own record."""
    if session.handle is None:
        return session
    loaded = await rt.store.load(session.handle, rt.clock())
    return loaded.session


async def _await_other_replica(rt: Runtime, session: Session, *, deadline: float) -> Session | None:
    while rt.clock() < deadline:
        await asyncio.sleep(_WAIT_STEP)
        current = await _reload(rt, session)
        if current is None or not current.refresh_due(rt.clock()):
            return current
    raise IdpUnavailableError("refresh_timeout")


async def _end(rt: Runtime, session: Session, reason: str) -> None:
    await rt.store.end(session, rt.clock())
    rt.forget_session(session.sid)
    rt.metrics.sessions_ended.labels("refresh_refused").inc()
    rt.audit_event("refresh_refused", None, identity=session.identity, sid=session.sid, reason=reason)
    logs.event("session_ended", logging.WARNING, cause="refresh_refused", reason=reason, provider=session.identity.idp)
