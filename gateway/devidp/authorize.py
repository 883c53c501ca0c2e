"""GET /authorize (validate, show the test persons) and POST /authorize/decide (answer the client)."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlencode

from aiohttp import web

from gateway.devidp import pages
from gateway.devidp.authrequest import (
    AuthorizationError,
    ResponseTarget,
    UnsafeRedirectError,
    parse_authorization_request,
)
from gateway.devidp.clients import origin_of
from gateway.devidp.params import RepeatedParameterError, collect_params, single
from gateway.devidp.persons import TEST_PERSONS, find_person
from gateway.devidp.state import CODE_TTL, PENDING_TTL, STATE, IssuedCode

log = logging.getLogger(__name__)


async def handle_authorize(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        auth = parse_authorization_request(collect_params(request.query), state.clients)
    except UnsafeRedirectError as exc:
        log.info("authorize refused without redirect: %s", exc)
        return pages.html_response("Request refused", pages.error_page(str(exc)), status=400)
    except AuthorizationError as exc:
        log.info("authorize error sent to client: %s", exc)
        return respond_to_client(request, exc.target, {"error": exc.error, "error_description": exc.description})
    request_id = secrets.token_urlsafe(32)
    state.pending.put(request_id, auth, state.clock() + PENDING_TTL)
    body = pages.login_page(
        auth,
        request_id=request_id,
        decide_path=state.endpoints.path("/authorize/decide"),
        persons=TEST_PERSONS,
    )
    # The decision is answered with a 303 to the client; CSP form-action also covers that redirect.
    csp = pages.content_security_policy([origin_of(auth.target.redirect_uri)])
    return pages.html_response("Choose a test person", body, csp=csp)


async def handle_decide(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if request.content_type != "application/x-www-form-urlencoded":
        return _refused("The form was not submitted as expected.", status=415)
    try:
        form = collect_params(await request.post())
        request_id = single(form, "request_id")
        person_id = single(form, "person")
        cancelled = single(form, "cancel") == "1"
    except RepeatedParameterError:
        return _refused("The form was not submitted as expected.")
    person = find_person(person_id) if person_id is not None else None
    if cancelled == (person is not None):
        return _refused("Choose exactly one test person, or cancel.")
    auth = state.pending.pop(request_id) if request_id is not None else None
    if auth is None:
        return _refused("This login request is unknown or has expired. Start the login again.")
    if person is None:
        return respond_to_client(
            request, auth.target, {"error": "access_denied", "error_description": "user cancelled"}
        )
    code = secrets.token_urlsafe(32)  # 256 bits
    now = state.clock()
    state.codes.put(
        code,
        IssuedCode(
            client_id=auth.client_id,
            redirect_uri=auth.target.redirect_uri,
            code_challenge=auth.code_challenge,
            nonce=auth.nonce,
            person_id=person.id,
            acr=auth.acr,
            auth_time=int(now),
        ),
        now + CODE_TTL,
    )
    log.info("code issued to client %s for test person %s", auth.client_id, person.id)
    return respond_to_client(request, auth.target, {"code": code})


def respond_to_client(request: web.Request, target: ResponseTarget, params: dict[str, str]) -> web.StreamResponse:
    """Deliver an authorization response by 303 or form post, with state and iss (RFC 9207)."""
    fields = dict(params)
    if target.state is not None:
        fields["state"] = target.state
    fields["iss"] = request.app[STATE].issuer
    if target.response_mode == "form_post":
        nonce = secrets.token_urlsafe(16)
        body = pages.form_post_page(target.redirect_uri, fields, script_nonce=nonce)
        csp = pages.content_security_policy([origin_of(target.redirect_uri)], script_nonce=nonce)
        return pages.html_response("Returning to the application", body, csp=csp)
    # Appending keeps the registered URI byte for byte, including any query it already has.
    uri = target.redirect_uri
    separator = "" if uri.endswith(("?", "&")) else "&" if "?" in uri else "?"
    return web.Response(status=303, headers={"Location": uri + separator + urlencode(fields)})


def _refused(message: str, *, status: int = 400) -> web.Response:
    return pages.html_response("Request refused", pages.error_page(message), status=status)
