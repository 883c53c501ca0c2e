"""Session and login cookies (web layer): read them from a request, write them on a response.

A cookie that fails to unseal is treated as absent and cleared; it never yields partial identity.
"""

from __future__ import annotations

from aiohttp import web

from gateway.runtime import Runtime
from gateway.session.codec import SealError
from gateway.session.model import PendingLogin, Session

SESSION_PURPOSE = "session"
LOGIN_PURPOSE = "login"


def read_session(request: web.Request, rt: Runtime) -> tuple[Session | None, str | None]:
    """Return (session, rejection reason). Reason is None when there simply was no cookie."""
    value = request.cookies.get(rt.session_cookie)
    if not value:
        return None, None
    now = rt.clock()
    session = rt.unsealed_sessions.get(value)
    if not isinstance(session, Session):
        try:
            session = Session.from_payload(rt.keyring.unseal(value, purpose=SESSION_PURPOSE, now=now))
        except SealError as exc:
            return None, exc.reason
        except ValueError:
            return None, "malformed"
        rt.unsealed_sessions.put(value, session)
    # Checked on every request, cached or not: the cookie's own expiry is min(absolute, idle).
    if not session.is_valid(now):
        return None, "expired"
    if rt.revoked_sessions.contains(session.sid, now):
        return None, "logged_out"
    return session, None


def write_session(response: web.StreamResponse, rt: Runtime, session: Session) -> None:
    value = rt.keyring.seal(session.to_payload(), purpose=SESSION_PURPOSE)
    response.set_cookie(
        rt.session_cookie,
        value,
        path="/",
        domain=rt.settings.session.cookie_domain,
        httponly=True,
        secure=rt.settings.secure_cookies,
        samesite="Lax",
        max_age=max(1, int(session.cookie_expiry() - rt.clock())),
    )


def clear_session(response: web.StreamResponse, rt: Runtime) -> None:
    response.del_cookie(
        rt.session_cookie,
        path="/",
        domain=rt.settings.session.cookie_domain,
        secure=rt.settings.secure_cookies,
        httponly=True,
        samesite="Lax",
    )


def read_pending_logins(request: web.Request, rt: Runtime) -> list[PendingLogin]:
    value = request.cookies.get(rt.login_cookie)
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
