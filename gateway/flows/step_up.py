"""Step-up (issue 16 item 2, web layer): a session below a rule's ``min_level`` gets a stronger login of the
same person instead of a 403. A browser navigation goes straight to the provider with the acr_values that
reach the level; an API client (and forward-auth) gets RFC 9470's 401 with the login URL. The old session
stays until the stronger login comes back as the same person (flows/redirect.py handle_callback).
"""

from __future__ import annotations

from aiohttp import web

from gateway.flows import redirect
from gateway.policy import StepUp
from gateway.protocol import assurance
from gateway.protocol.claims import Identity
from gateway.protocol.paths import encode_path
from gateway.responses import wants_html
from gateway.runtime import Runtime
from gateway.session.model import Session


def target(rt: Runtime, identity: Identity, step_up: StepUp) -> tuple[str, tuple[str, ...]] | None:
    """The provider and acr_values a step-up asks for, or None when no redirect-flow provider can give the
    level (then the request is refused as before)."""
    provider = rt.settings.provider(step_up.provider or identity.idp)
    if provider is None or provider.is_poll_flow:
        return None
    values = step_up.acr_values or assurance.acr_values_for(step_up.min_level, provider.acr_values, provider.acr_levels)
    return (provider.name, values) if values else None


def insufficient(login_url: str, acr_values: tuple[str, ...]) -> web.Response:
    """RFC 9470: the API client's answer to a session too weak for the resource."""
    challenge = (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A stronger login is needed", acr_values="'
        + " ".join(v.replace('"', "").replace("\\", "") for v in acr_values)
        + '"'
    )
    return web.json_response(
        {"error": "insufficient_user_authentication", "login_url": login_url},
        status=401,
        headers={"Cache-Control": "no-store", "WWW-Authenticate": challenge},
    )


async def respond(
    request: web.Request, rt: Runtime, path: str, session: Session, step_up: StepUp
) -> web.StreamResponse | None:
    """The step-up answer, or None when no provider can give the level (the caller refuses as before)."""
    found = target(rt, session.identity, step_up)
    if found is None:
        return None
    name, acr_values = found
    query = request.raw_path.partition("?")[2]
    return_to = encode_path(path) + (f"?{query}" if query else "")
    if not wants_html(request):
        return insufficient(rt.settings.public_url + redirect.step_up_url(name, acr_values, return_to), acr_values)
    return await redirect.redirect_to_provider(
        request, rt, name, rt.return_target(return_to), redirect.LoginRequest(acr_values=acr_values),
        step_up_of=session,
    )


