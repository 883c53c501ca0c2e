"""``POST /_auth/backchannel-logout/<provider>``: OpenID Connect Back-Channel Logout 1.0 (web layer).

The provider posts a signed logout token; the gateway ends the sessions made from that provider session
(``sid``) or, without one, every session of that person at that provider (``sub``). Answers follow §2.8:
200 when done, 400 ``invalid_request`` for a token it refuses (nothing is ended), 503 when the session
store cannot answer (the provider may retry).
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway import logs
from gateway.errors import GatewayError, TokenValidationError
from gateway.protocol import jws
from gateway.protocol.logout_token import validate_logout_token
from gateway.runtime import RUNTIME

MAX_BODY = 64 * 1024
NO_STORE = {"Cache-Control": "no-store"}


def _refused(description: str) -> web.Response:
    return web.json_response(
        {"error": "invalid_request", "error_description": description}, status=400, headers=NO_STORE
    )


async def handle_backchannel_logout(request: web.Request, *, provider_name: str) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    provider = rt.settings.provider(provider_name)
    client = rt.providers.get(provider_name)
    if provider is None or client is None:
        return _refused("unknown provider")
    if request.content_type != "application/x-www-form-urlencoded":
        return _refused("the body must be application/x-www-form-urlencoded")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _refused("the body must be at most 64 KiB")
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        return _refused("the body must be at most 64 KiB")
    tokens = form.getall("logout_token", [])
    if len(tokens) != 1 or not isinstance(tokens[0], str) or not tokens[0]:
        return _refused("exactly one logout_token is required")
    token = tokens[0]
    now = rt.clock()
    try:
        header = jws.read_header(token)
        claims = await client.verify_signature(token)
        metadata = await client.metadata()
        logout = validate_logout_token(header, claims, issuer=metadata.issuer, client_id=provider.client_id, now=now)
    except (TokenValidationError, jws.JoseError) as exc:
        reason = exc.reason
        rt.metrics.backchannel_logouts.labels(provider_name, "refused").inc()
        logs.event("backchannel_logout_refused", logging.WARNING, provider=provider_name, reason=reason)
        return _refused("the logout token is not valid")
    except GatewayError as exc:  # the provider's keys could not be fetched
        rt.metrics.backchannel_logouts.labels(provider_name, "error").inc()
        logs.event("backchannel_logout_failed", logging.WARNING, provider=provider_name, reason=exc.reason)
        raise
    marker = f"logout-jti:{provider_name}:{logout.jti}"
    if await rt.store.is_spent(marker, now):
        rt.metrics.backchannel_logouts.labels(provider_name, "replayed").inc()
        logs.event("backchannel_logout_refused", logging.WARNING, provider=provider_name, reason="replayed_jti")
        return _refused("this logout token was already used")
    # End first, then spend the jti: if the store fails in between, the provider's retry of the same token
    # still ends the sessions (ending twice is harmless; a token spent first and not acted on would be lost).
    if logout.sid is not None:
        ended = await rt.store.end_for_provider_session(provider_name, logout.sid, now)
    else:
        assert logout.sub is not None
        ended = await rt.store.end_for_subject(provider_name, logout.sub, now)
    await rt.store.spend(marker, logout.remember_until, now)  # False: a concurrent copy of this token won
    rt.metrics.backchannel_logouts.labels(provider_name, "ok").inc()
    rt.metrics.sessions_ended.labels("backchannel").inc(ended)
    logs.event("backchannel_logout", provider=provider_name, by="sid" if logout.sid else "sub", ended=ended)
    # The provider names the session or the account, not the person: the record has no person.
    rt.audit_event("backchannel_logout", request, provider=provider_name, reason="by_sid" if logout.sid else "by_sub")
    return web.Response(status=200, headers=NO_STORE)
