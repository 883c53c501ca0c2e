"""Session administration (issue 14 item 4), web layer: on the internal listener only (``metrics.listen``),
never on the public one, where ``/_auth/admin/...`` is an unknown gateway route (404).

    POST /_auth/admin/sessions/list     {"person": "<national ID>"} or {"provider": "...", "sub": "..."}
    POST /_auth/admin/sessions/revoke   the same, or {"session": "<reference from list>"}

Authenticated with ``Authorization: Bearer <the token in admin.token_file>``. The national ID travels in the
body, never in a URL (which proxies and logs keep). Every call, refused ones too, is an audit record
(``admin_sessions_listed``, ``admin_revoked``, ``admin_refused``).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway import logs
from gateway.errors import GatewayError
from gateway.protocol.claims import Identity
from gateway.protocol.national_id import is_national_id
from gateway.protocol.pairwise import person_key
from gateway.runtime import Runtime
from gateway.session.store import NotListableError, SessionInfo

PREFIX = "/_auth/admin/"
NO_STORE = {"Cache-Control": "no-store"}
MAX_BODY = 4096

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Refused(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(error)
        self.status, self.error, self.message = status, error, message


def _answer(status: int, body: dict[str, object]) -> web.Response:
    return web.json_response(body, status=status, headers=NO_STORE)


def _authorized(request: web.Request, token: str) -> bool:
    given = request.headers.getall("Authorization", [])
    if len(given) != 1 or not given[0].startswith("Bearer "):
        return False
    return hmac.compare_digest(given[0][len("Bearer ") :].encode(), token.encode())


async def _body(request: web.Request) -> dict[str, object]:
    if request.content_type != "application/json":
        raise _Refused(415, "bad_request", "Send JSON (Content-Type: application/json).")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise _Refused(413, "bad_request", "The body must be at most 4 KiB.")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _Refused(400, "bad_request", "The body is not JSON.") from exc
    if not isinstance(data, dict):
        raise _Refused(400, "bad_request", "The body must be a JSON object.")
    return data


def _person(data: dict[str, object]) -> Identity:
    """The person a request names, as an identity with only what person_key needs."""
    nid, provider, sub = data.get("person"), data.get("provider"), data.get("sub")
    if isinstance(nid, str) and provider is None and sub is None:
        if not is_national_id(nid, None):
            raise _Refused(400, "bad_request", "person must be a national identity number.")
        return Identity(values={"sub": "-", "idp": "-", "ssn": nid})
    if isinstance(provider, str) and isinstance(sub, str) and nid is None and provider and sub:
        return Identity(values={"sub": sub, "idp": provider})
    raise _Refused(400, "bad_request", 'Name one person: {"person": "<national ID>"} or {"provider": ..., "sub": ...}.')


def _shown(info: SessionInfo) -> dict[str, object]:
    return {
        "session": info.reference,
        "provider": info.provider,
        "acr": info.acr,
        "started": int(info.created),
        "last_seen": int(info.last_seen),
        "expires": int(info.expires),
    }


def _scope(rt: Runtime) -> str:
    return "every replica" if rt.store.name == "redis" else "this process"


def _guarded(rt: Runtime, action: Callable[[web.Request, dict[str, object]], Awaitable[web.Response]]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        token = rt.admin_token
        if token is None or not _authorized(request, token):
            rt.metrics.admin_requests.labels("refused").inc()
            rt.audit_event("admin_refused", request, reason="bad_token")
            logs.event("admin_refused", logging.WARNING, client=rt.client_view(request).address)
            return _answer(401, {"error": "unauthorized"})
        try:
            response = await action(request, await _body(request))
        except _Refused as refused:
            rt.metrics.admin_requests.labels("bad_request").inc()
            return _answer(refused.status, {"error": refused.error, "message": refused.message})
        except NotListableError as exc:
            rt.metrics.admin_requests.labels("not_listable").inc()
            return _answer(exc.status, {"error": exc.code, "message": exc.public_message})
        except GatewayError as exc:  # the store is down: say so, never pretend it worked
            rt.metrics.admin_requests.labels("error").inc()
            return _answer(exc.status, {"error": exc.code, "message": exc.public_message})
        rt.metrics.admin_requests.labels("ok").inc()
        return response

    return handle


def admin_routes(rt: Runtime) -> list[web.RouteDef]:
    async def listed(request: web.Request, data: dict[str, object]) -> web.Response:
        person = _person(data)
        sessions = await rt.store.sessions_of_person(person_key(person), rt.clock())
        rt.audit_event("admin_sessions_listed", request, person=person, reason=f"{len(sessions)} sessions")
        return _answer(200, {"sessions": [_shown(s) for s in sessions], "store": rt.store.name})

    async def revoked(request: web.Request, data: dict[str, object]) -> web.Response:
        reference = data.get("session")
        now = rt.clock()
        if isinstance(reference, str) and len(data) == 1:
            ended = await rt.store.end_by_reference(reference, now)
            rt.audit_event("admin_revoked", request, reason=f"session {reference[:12]}: {ended} ended")
            return _answer(200, {"ended": ended, "store": rt.store.name, "scope": _scope(rt)})
        person = _person(data)
        ended = await rt.store.end_for_person(person_key(person), now)
        rt.audit_event("admin_revoked", request, person=person, reason=f"person: {ended} ended")
        return _answer(200, {"ended": ended, "store": rt.store.name, "scope": _scope(rt)})

    return [
        web.post(PREFIX + "sessions/list", _guarded(rt, listed)),
        web.post(PREFIX + "sessions/revoke", _guarded(rt, revoked)),
    ]
