"""Poll-based logins (Idura headless, CIBA): the JSON API the login page and native apps use (web layer).

The transaction lives in a sealed, HttpOnly cookie that only the browser which started it holds
(attacks.md T41): there is no transaction handle to guess or to pass around, the provider's
request id never appears in clear, and any replica with the cookie keys can serve the next poll.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import segno
from aiohttp import web

from gateway import logs
from gateway.config import ProviderSettings
from gateway.errors import (
    BadRequestError,
    CrossSiteRequestError,
    GatewayError,
    IdpUnavailableError,
    NotFoundError,
    StateMismatchError,
    TokenValidationError,
)
from gateway.flows.limits import enforce, enforce_per_client
from gateway.flows.sessions import end_presented_session
from gateway.idp.poll_client import PollClient
from gateway.protocol import assurance, bankid, field_lines, poll, strict_json
from gateway.protocol.claims import ClaimError, is_national_id, map_claims
from gateway.protocol.poll import PollTransaction
from gateway.responses import error_response, is_same_origin
from gateway.runtime import RUNTIME, Runtime
from gateway.session.cookies import clear_session, refuse_ambiguous, write_session
from gateway.session.model import Session

POLL_PURPOSE = "poll"
MAX_JSON_BODY = 4096
#: The page asks the gateway this often; the gateway asks the provider only once per its interval.
BROWSER_POLL_MS = 1000
NO_STORE = {"Cache-Control": "no-store"}


def _language(request: web.Request, provider: ProviderSettings) -> bankid.Lang:
    return bankid.choose_language(provider.ui_locales, field_lines.joined(request.headers, "Accept-Language"))


def _poll_provider(rt: Runtime, name: object) -> tuple[ProviderSettings, PollClient]:
    provider = rt.settings.provider(name) if isinstance(name, str) else None
    client = rt.poll_clients.get(provider.name) if provider is not None else None
    if provider is None or client is None:
        raise BadRequestError("unknown_provider", public_message="Unknown login provider.")
    return provider, client


async def read_transaction(request: web.Request, rt: Runtime) -> tuple[PollTransaction, str] | None:
    """The transaction this browser started; None without a usable binding cookie. The binding cookie sent
    twice raises StateMismatchError: the step is refused, neither transaction is picked."""
    value = refuse_ambiguous(request, rt, "poll")
    if not value:
        return None
    try:
        payload = rt.keyring.unseal(value, purpose=POLL_PURPOSE, now=rt.clock())
        tx = PollTransaction.from_payload(payload.get("t"))
    except (ValueError, poll.PollProtocolError):
        return None
    return_to = payload.get("r")
    if not isinstance(return_to, str) or await rt.store.is_spent("tx:" + tx.request_id, rt.clock()):
        return None
    return tx, return_to


def write_transaction(response: web.StreamResponse, rt: Runtime, tx: PollTransaction, return_to: str) -> None:
    expires = tx.expires_at + 60
    value = rt.keyring.seal({"t": tx.to_payload(), "r": return_to, "exp": expires}, purpose=POLL_PURPOSE)
    response.set_cookie(
        rt.poll_cookie,
        value,
        path="/",  # __Host- cookies must have Path=/ or browsers drop them
        httponly=True,
        secure=rt.settings.secure_cookies,
        samesite="Strict",
        max_age=max(1, int(expires - rt.clock())),
    )


def clear_transaction(response: web.StreamResponse, rt: Runtime) -> None:
    response.del_cookie(
        rt.poll_cookie, path="/", secure=rt.settings.secure_cookies, httponly=True, samesite="Strict"
    )


def _refused_binding(request: web.Request, rt: Runtime, error: StateMismatchError) -> web.StreamResponse:
    """The binding cookie came twice: the step is refused and the cookie cleared, so a new start is clean."""
    response = error_response(request, error)
    clear_transaction(response, rt)
    return response


#: CIBA is not BankID: its device and wording are the provider's, so the page speaks generically.
_CIBA_MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "pending": "Bekräfta inloggningen på din enhet.",
        "complete": "Inloggad. Fortsätter…",
        "failed": "Inloggningen nekades eller kunde inte slutföras.",
        "expired": "Tiden för inloggningen gick ut. Försök igen.",
        "cancelled": "Inloggningen avbröts.",
    },
    "en": {
        "pending": "Confirm the login on your device.",
        "complete": "Logged in. Continuing…",
        "failed": "The login was refused or could not be completed.",
        "expired": "The login timed out. Please try again.",
        "cancelled": "The login was cancelled.",
    },
}


def _message(tx: PollTransaction, *, lang: bankid.Lang, mode: str) -> str:
    if tx.kind == "ciba":
        return _CIBA_MESSAGES[lang][tx.status]
    return bankid.user_message(
        status=tx.status,
        hint_code=tx.hint_code,
        reason=tx.reason,
        mode="autostart" if mode == "autostart" else "qr",
        lang=lang,
    )


def _view(tx: PollTransaction, *, lang: bankid.Lang, mode: str = "qr") -> dict[str, Any]:
    acr_data = {k: v for k, v in (("qrData", tx.qr_data), ("autoStartToken", tx.auto_start_token)) if v}
    view: dict[str, Any] = {
        "status": tx.status,
        "acr_data": acr_data,
        "hint_code": tx.hint_code,
        "message": _message(tx, lang=lang, mode=mode),
    }
    if tx.status == "pending":
        view["poll_after_ms"] = BROWSER_POLL_MS
    if tx.status in ("failed", "expired", "cancelled"):
        view["reason"] = tx.reason
    return view


#: The provider refused what the person entered: a 400 they can act on, not a fault of ours (CIBA §13).
_USER_START_ERRORS = {
    "unknown_user_id": "No login can be started for that personal identity number.",
    "expired_login_hint_token": "The login hint has expired. Please start again.",
    "access_denied": "The login was refused.",
}


def _start_error(reason: str) -> GatewayError:
    if reason in _USER_START_ERRORS:
        return BadRequestError(reason, public_message=_USER_START_ERRORS[reason])
    # Our client configuration or the provider itself failed: 502, like every other provider failure.
    return IdpUnavailableError(reason, public_message="The login could not be started. Please try again later.")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise BadRequestError("content_type", public_message="Send JSON (Content-Type: application/json).")
    if request.content_length is None or request.content_length > MAX_JSON_BODY:
        raise BadRequestError("body_size")
    try:
        data = strict_json.loads(await request.read())
    except ValueError as exc:
        raise BadRequestError("malformed_json") from exc
    if not isinstance(data, dict):
        raise BadRequestError("malformed_json")
    return data


async def handle_start(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    if not is_same_origin(request, rt.settings.public_url):
        raise CrossSiteRequestError("cross_site_start")
    data = await _json_body(request)
    provider, client = _poll_provider(rt, data.get("provider"))
    return_to = rt.return_target(data.get("rd") if isinstance(data.get("rd"), str) else None)
    login_hint = None
    if provider.flow == "ciba":
        identifier = data.get("login_hint")
        if not isinstance(identifier, str) or not is_national_id(identifier.strip()):
            raise BadRequestError("login_hint", public_message="Enter a valid personal identity number.")
        login_hint = provider.login_hint_format.replace("{ssn}", identifier.strip())
    await enforce_per_client(request, rt, "poll_start_per_client")
    if provider.flow == "ciba":
        # Each CIBA start pushes a notification to this person's phone: limited per number, whoever asks.
        await enforce(rt, "ciba_per_person", str(data["login_hint"]).strip())
    view = rt.client_view(request)
    try:
        tx = await client.start(end_user_ip=view.address, login_hint=login_hint)
    except poll.PollProtocolError as exc:
        rt.metrics.poll_failed.labels(provider.name, exc.reason).inc()
        raise _start_error(exc.reason) from exc
    except GatewayError as exc:
        rt.metrics.poll_failed.labels(provider.name, exc.reason).inc()
        raise
    rt.audit_login("login_started", request, provider=provider.name, route=_route_name(rt, return_to))
    rt.metrics.poll_started.labels(provider.name).inc()
    logs.event("poll_login_started", provider=provider.name, flow=provider.flow)
    body = _view(tx, lang=_language(request, provider), mode=str(data.get("mode", "qr")))
    body["expires_in"] = max(0, int(tx.expires_at - rt.clock()))
    response = web.json_response(body, headers=NO_STORE)
    await end_presented_session(request, rt)  # a new login ends the old session (attacks.md T37)
    clear_session(response, rt)
    write_transaction(response, rt, tx, return_to)
    return response


async def _finish(
    rt: Runtime, provider: ProviderSettings, tx: PollTransaction, id_token: str
) -> tuple[PollTransaction, Session | None]:
    """Validate the provider's ID token exactly as in the redirect flow (no nonce: none was sent)."""
    try:
        claims = await rt.providers[provider.name].verify_id_token(id_token, nonce=None)
        identity = map_claims(claims, provider.claims, provider=provider.name, required=provider.required_claims)
        identity = assurance.with_level(identity, provider.acr_levels)
        if provider.min_level is not None and (assurance.session_level(identity) or -1) < provider.min_level:
            logs.event("poll_login_refused", logging.WARNING, provider=provider.name, reason="acr_below_min_level")
            return poll.fail(tx, "acr_below_min_level", rt.clock()), None
    except TokenValidationError as exc:
        rt.metrics.token_failures.labels(provider.name, exc.reason).inc()
        return poll.fail(tx, "token_invalid", rt.clock()), None
    except ClaimError as exc:
        logs.event("poll_login_refused", logging.WARNING, provider=provider.name, reason=exc.reason)
        return poll.fail(tx, "claims_refused", rt.clock()), None
    except GatewayError as exc:
        return poll.fail(tx, exc.reason, rt.clock()), None
    session = Session.new(
        identity, now=rt.clock(), lifetime=rt.settings.session.lifetime, idle_timeout=rt.settings.session.idle_timeout
    )
    return poll.complete(tx, rt.clock()), session


def _route_name(rt: Runtime, return_to: str) -> str | None:
    route = rt.route_of_target(return_to)
    return route.name if route else None


async def handle_status(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    try:
        found = await read_transaction(request, rt)
    except StateMismatchError as exc:
        return _refused_binding(request, rt, exc)
    if found is None:
        raise NotFoundError("no_transaction", public_message="There is no login in progress in this browser.")
    tx, return_to = found
    provider, client = _poll_provider(rt, tx.provider)
    spent = "tx:" + tx.request_id
    gone = NotFoundError("no_transaction", public_message="There is no login in progress in this browser.")
    await client.wait_until_due(tx)
    # Cancelled or finished (on any replica) while this call waited: no poll for a dead transaction.
    if await rt.store.is_spent(spent, rt.clock()):
        raise gone
    outcome = await client.poll_if_due(tx)
    # Several status calls (on any replica) may have waited on the same provider poll: the first to spend
    # the transaction takes the result; the store's marker makes that atomic, so the others find it gone.
    if await rt.store.is_spent(spent, rt.clock()):
        raise gone
    tx, session = outcome.tx, None
    if outcome.id_token is not None:
        if not await rt.store.spend(spent, tx.expires_at + 60, rt.clock()):
            raise gone
        tx, session = await _finish(rt, provider, tx, outcome.id_token)
    client.remember(tx)
    body = _view(tx, lang=_language(request, provider), mode=request.query.get("mode", "qr"))
    if tx.status == "pending":
        response = web.json_response(body, headers=NO_STORE)
        write_transaction(response, rt, tx, return_to)
        return response
    # Terminal: the transaction is spent, whatever the result (single use, also for a copied cookie).
    await rt.store.spend(spent, tx.expires_at + 60, rt.clock())
    client.forget(tx.request_id)
    route = _route_name(rt, return_to)
    if session is not None:
        # Before the session exists: with audit.required, a login that cannot be recorded does not happen.
        rt.audit_login(
            "login_succeeded", request, provider=provider.name, identity=session.identity, sid=session.sid,
            route=route,
        )
        body["redirect"] = return_to
    else:
        rt.audit_login("login_refused", request, provider=provider.name, reason=tx.reason or tx.status, route=route)
    response = web.json_response(body, headers=NO_STORE)
    clear_transaction(response, rt)
    if session is not None:
        await write_session(response, rt, session)
        rt.metrics.poll_completed.labels(provider.name).inc()
        rt.metrics.poll_duration.labels(provider.name).observe(rt.clock() - tx.created)
        logs.event(
            "poll_login_completed",
            provider=provider.name,
            sub=session.identity.sub,
            ssn=session.identity.get("ssn") or "",
        )
    else:
        rt.metrics.poll_failed.labels(provider.name, tx.reason or tx.status).inc()
        logs.event("poll_login_failed", logging.WARNING, provider=provider.name, reason=tx.reason or tx.status)
    return response


async def handle_cancel(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    if not is_same_origin(request, rt.settings.public_url):
        raise CrossSiteRequestError("cross_site_cancel")
    try:
        found = await read_transaction(request, rt)
    except StateMismatchError as exc:
        return _refused_binding(request, rt, exc)
    if found is None:
        raise NotFoundError("no_transaction", public_message="There is no login in progress in this browser.")
    tx, _ = found
    provider, client = _poll_provider(rt, tx.provider)
    tx = poll.cancel(tx, rt.clock())
    await rt.store.spend("tx:" + tx.request_id, tx.expires_at + 60, rt.clock())
    client.forget(tx.request_id)
    rt.metrics.poll_failed.labels(provider.name, "cancelled").inc()
    response = web.json_response(_view(tx, lang=_language(request, provider)), headers=NO_STORE)
    clear_transaction(response, rt)
    return response


async def handle_qr(request: web.Request) -> web.StreamResponse:
    """The current BankID QR frame as SVG, drawn here so no third-party script or service is needed."""
    rt = request.app[RUNTIME]
    try:
        found = await read_transaction(request, rt)
    except StateMismatchError as exc:
        return _refused_binding(request, rt, exc)
    if found is None:
        raise NotFoundError("no_transaction")
    tx, _ = found
    _, client = _poll_provider(rt, tx.provider)
    qr_data = client.newest(tx).qr_data
    if not qr_data:
        raise NotFoundError("no_qr")
    out = io.BytesIO()
    segno.make(qr_data, error="l").save(out, kind="svg", scale=6, border=4, xmldecl=False, title="BankID QR code")
    return web.Response(body=out.getvalue(), content_type="image/svg+xml", headers=NO_STORE)
