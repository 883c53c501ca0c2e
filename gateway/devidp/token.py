"""POST /token (authorization_code, and the headless grant via gateway.devidp.headless) and GET /userinfo."""

from __future__ import annotations

import dataclasses
import logging
import secrets
from typing import Any

from aiohttp import web

from gateway.devidp.clientauth import ClientAuthError, authenticate_client
from gateway.devidp.clients import DevClient
from gateway.devidp.headless import HEADLESS_GRANT, authenticate_headless_client, poll_headless
from gateway.devidp.idtoken import build_id_token_claims, pkce_matches
from gateway.devidp.oauth_errors import NO_STORE, json_error
from gateway.devidp.params import Params, RepeatedParameterError, check_no_repeats, collect_params, single
from gateway.devidp.persons import TestPerson, find_person
from gateway.devidp.state import ACCESS_TOKEN_TTL, STATE, AccessGrant, DevIdpState, IssuedCode
from gateway.protocol import jws

log = logging.getLogger(__name__)


class GrantError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


async def handle_token(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if request.content_type != "application/x-www-form-urlencoded":
        return json_error("invalid_request", "the body must be application/x-www-form-urlencoded", 400)
    form = collect_params(await request.post())
    try:
        check_no_repeats(form)
        headless = single(form, "grant_type") == HEADLESS_GRANT
        authorization = request.headers.get("Authorization")
        if headless:
            client = authenticate_headless_client(state, form, authorization)
        else:
            client = authenticate_client(
                form,
                authorization,
                clients=state.clients,
                issuer=state.issuer,
                token_endpoint=state.endpoints.url("/token"),
                now=state.clock(),
                jti_cache=state.assertion_ids,
            )
    except RepeatedParameterError as exc:
        return json_error("invalid_request", str(exc), 400)
    except ClientAuthError as exc:
        log.info("token request refused: %s", exc.description)
        return json_error(exc.error, exc.description, exc.status, challenge=exc.challenge)
    if headless:
        return poll_headless(state, form, client)
    try:
        issued, access_token = _redeem_code(state, form, client)
        person = find_person(issued.person_id)
        if person is None:
            raise GrantError("invalid_grant", "the test person no longer exists")
    except GrantError as exc:
        log.info("token request for client %s refused: %s", client.client_id, exc.description)
        return json_error(exc.error, exc.description, 400)
    return _issue_tokens(state, issued, person, access_token)


def _redeem_code(state: DevIdpState, form: Params, client: DevClient) -> tuple[IssuedCode, str]:
    grant_type = single(form, "grant_type")
    if grant_type is None:
        raise GrantError("invalid_request", "grant_type is missing")
    if grant_type != "authorization_code":
        raise GrantError("unsupported_grant_type", f"only authorization_code and {HEADLESS_GRANT} are supported")
    code, redirect_uri, verifier = (single(form, n) for n in ("code", "redirect_uri", "code_verifier"))
    if code is None or redirect_uri is None or verifier is None:
        raise GrantError("invalid_request", "code, redirect_uri and code_verifier are required")
    issued = state.codes.get(code)
    if issued is None:
        raise GrantError("invalid_grant", "the code is unknown or has expired")
    if issued.redeemed:
        # RFC 6749 §4.1.2: a code used twice revokes what was issued with it.
        if issued.access_token is not None:
            state.access_tokens.discard(issued.access_token)
        raise GrantError("invalid_grant", "the code was already used")
    # One attempt per code, successful or not: a wrong verifier cannot be retried.
    used = dataclasses.replace(issued, redeemed=True)
    state.codes.put(code, used, state.clock() + ACCESS_TOKEN_TTL)
    if issued.client_id != client.client_id:
        raise GrantError("invalid_grant", "the code was issued to another client")
    if redirect_uri != issued.redirect_uri:
        raise GrantError("invalid_grant", "redirect_uri differs from the authorization request")
    if not pkce_matches(verifier, issued.code_challenge):
        raise GrantError("invalid_grant", "code_verifier does not match the code_challenge")
    access_token = secrets.token_urlsafe(32)
    redeemed = dataclasses.replace(used, access_token=access_token)
    state.codes.put(code, redeemed, state.clock() + ACCESS_TOKEN_TTL)
    return issued, access_token


def _issue_tokens(state: DevIdpState, issued: IssuedCode, person: TestPerson, access_token: str) -> web.Response:
    now = state.clock()
    state.access_tokens.put(access_token, AccessGrant(issued.client_id, person.id), now + ACCESS_TOKEN_TTL)
    claims = build_id_token_claims(issued, person, issuer=state.issuer, access_token=access_token, now=now)
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL,
        "id_token": jws.sign(claims, state.signing_key),
    }
    return web.json_response(body, headers=NO_STORE)


async def handle_userinfo(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _bearer_challenge(None)
    grant = state.access_tokens.get(token.strip())
    person = find_person(grant.person_id) if grant is not None else None
    if person is None:
        return _bearer_challenge("the access token is unknown, expired or revoked")
    return web.json_response({"sub": person.subject, **person.claims()}, headers=NO_STORE)


def _bearer_challenge(description: str | None) -> web.Response:
    # RFC 6750 §3.1: no error code when the request carried no token at all.
    challenge = 'Bearer realm="devidp"'
    if description is not None:
        challenge += f', error="invalid_token", error_description="{description}"'
    body = {"error": "invalid_token", "error_description": description or "a Bearer access token is required"}
    return web.json_response(body, status=401, headers={**NO_STORE, "WWW-Authenticate": challenge})
