"""GET /logout: OpenID Connect RP-Initiated Logout, redirecting only to registered URIs."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from gateway.devidp import pages
from gateway.devidp.authrequest import MAX_STATE_LENGTH
from gateway.devidp.params import RepeatedParameterError, check_no_repeats, collect_params, single
from gateway.devidp.state import STATE, DevIdpState
from gateway.protocol import jws


class LogoutError(ValueError):
    pass


async def handle_logout(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    params = collect_params(request.query)
    try:
        check_no_repeats(params)
        hint = single(params, "id_token_hint")
        hint_client = _client_of_hint(state, hint) if hint is not None else None
        client_id = single(params, "client_id")
        if client_id is not None and hint_client is not None and client_id != hint_client:
            raise LogoutError("client_id does not match the id_token_hint.")
        logout_state = single(params, "state")
        if logout_state is not None and len(logout_state) > MAX_STATE_LENGTH:
            raise LogoutError("state is too long.")
    except (RepeatedParameterError, LogoutError) as exc:
        return pages.html_response("Logout refused", pages.error_page(str(exc)), status=400)
    client = state.clients.get(client_id or hint_client or "")
    uri = single(params, "post_logout_redirect_uri")
    if uri is not None and client is not None and uri in client.post_logout_redirect_uris:
        query = urlencode({"state": logout_state}) if logout_state is not None else ""
        separator = "&" if "?" in uri else "?"
        return web.Response(status=303, headers={"Location": uri + (separator + query if query else "")})
    note = None
    if uri is not None:
        note = "The post_logout_redirect_uri is not registered for this client, so you were not sent back."
    return pages.html_response("Logged out", pages.logged_out_page(note))


def _client_of_hint(state: DevIdpState, hint: str) -> str:
    """The client an ID token of ours was issued to; expired hints are fine (RP-Initiated Logout §2)."""
    key = state.signing_key
    try:
        claims = jws.verify(hint, [key.public], algorithms={key.alg})
    except jws.JoseError as exc:
        raise LogoutError("id_token_hint was not issued by this identity provider.") from exc
    aud = claims.get("azp", claims.get("aud"))
    if claims.get("iss") != state.issuer or not isinstance(aud, str):
        raise LogoutError("id_token_hint was not issued by this identity provider.")
    return aud
