"""Idura's Headless flow for Swedish BankID: POST /headless/authorize and the headless grant at /token.

The wire format follows protocols.md §2 and the Idura sample byte for byte where it is documented
(``expires_in`` is an int when starting and a string in the token response). Injected faults
(``/_dev/headless/faults``) are applied only after every check has passed: they change what a poll
is answered, never whether it is accepted.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid

from aiohttp import web

from gateway.devidp.bankid_qr import animated_qr_data
from gateway.devidp.clientauth import ClientAuthError, authenticate_client
from gateway.devidp.clients import DevClient
from gateway.devidp.headless_store import (
    OUTSTANDING,
    SEBANKID_ACR_VALUES,
    TOKEN_FAULTS,
    USER_SIGN,
    HeadlessOrder,
)
from gateway.devidp.idtoken import build_sebankid_id_token_claims
from gateway.devidp.oauth_errors import NO_STORE, json_body, json_error
from gateway.devidp.params import Params, RepeatedParameterError, check_no_repeats, collect_params, single
from gateway.devidp.persons import TestPerson, find_person
from gateway.devidp.state import STATE, DevIdpState
from gateway.devidp.store import StoreFullError
from gateway.keys import generate_ec_pem, generate_rsa_pem, signing_key_from_pem
from gateway.protocol import jws
from gateway.protocol.jws import SigningKey

log = logging.getLogger(__name__)

HEADLESS_GRANT = "urn:grn:params:grant-type:headless"
#: Idura: client assertions should live at most 5 minutes (protocols.md §1.2).
HEADLESS_MAX_ASSERTION_LIFETIME = 300.0
FORM = "application/x-www-form-urlencoded"
WRONG_AUDIENCE = "someone-else"

_EXPIRED = ("expired_token", "the headless request has expired; start a new one")
_UNKNOWN = ("invalid_grant", "headless_req_id is unknown or no longer valid")


class _BadStart(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def authenticate_headless_client(state: DevIdpState, form: Params, authorization: str | None) -> DevClient:
    """Client authentication exactly as at /token, with Idura's 5-minute cap on assertions."""
    return authenticate_client(
        form,
        authorization,
        clients=state.clients,
        issuer=state.issuer,
        token_endpoint=state.endpoints.url("/token"),
        now=state.clock(),
        jti_cache=state.assertion_ids,
        max_lifetime=HEADLESS_MAX_ASSERTION_LIFETIME,
    )


async def handle_headless_authorize(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if request.content_type != FORM:
        return json_error("invalid_request", f"the body must be {FORM}")
    form = collect_params(await request.post())
    try:
        check_no_repeats(form)
        client = authenticate_headless_client(state, form, request.headers.get("Authorization"))
    except RepeatedParameterError as exc:
        return json_error("invalid_request", str(exc))
    except ClientAuthError as exc:
        log.info("headless authorize refused: %s", exc.description)
        return json_error(exc.error, exc.description, exc.status, challenge=exc.challenge)
    try:
        acr, end_user_ip = _parse_start(form)
    except _BadStart as exc:
        log.info("headless authorize for client %s refused: %s", client.client_id, exc.description)
        return json_error(exc.error, exc.description)
    now = state.clock()
    order = HeadlessOrder.new(
        client_id=client.client_id, acr=acr, end_user_ip=end_user_ip, now=now, expires_in=state.headless_expires_in
    )
    try:
        state.headless.add(order)
    except StoreFullError:
        return json_error("temporarily_unavailable", "too many headless requests in flight", 503)
    log.info("headless order started for client %s (acr %s)", client.client_id, acr)
    return json_body(
        {
            "headless_req_id": order.req_id,
            "expires_in": state.headless_expires_in,
            "acr_data": {
                "qrData": animated_qr_data(order.qr_start_token, order.qr_start_secret, 0),
                "autoStartToken": order.auto_start_token,
            },
        }
    )


def _parse_start(form: Params) -> tuple[str, str]:
    scope = single(form, "scope")
    if scope is None:
        raise _BadStart("invalid_request", "scope is required")
    if "openid" not in scope.split(" "):
        raise _BadStart("invalid_scope", "scope must contain openid")
    acr = single(form, "acr_values")
    if acr is None:
        raise _BadStart("invalid_request", "acr_values is required")
    if acr not in SEBANKID_ACR_VALUES:
        raise _BadStart("invalid_request", f"acr_values must be one of {', '.join(SEBANKID_ACR_VALUES)}")
    raw_ip = single(form, "end_user_ip")
    if raw_ip is None:
        raise _BadStart("invalid_request", "end_user_ip is required")
    try:
        end_user_ip = str(ipaddress.ip_address(raw_ip))
    except ValueError:
        raise _BadStart("invalid_request", "end_user_ip must be an IPv4 or IPv6 address") from None
    return acr, end_user_ip


def poll_headless(state: DevIdpState, form: Params, client: DevClient) -> web.Response:
    """The headless grant at /token, after the client has authenticated."""
    req_id = single(form, "headless_req_id")
    if req_id is None:
        return json_error("invalid_request", "headless_req_id is required")
    now = state.clock()
    order = state.headless.get(req_id)
    if order is None:
        return json_error(*_UNKNOWN)
    if order.client_id != client.client_id:
        return json_error("invalid_grant", "headless_req_id was issued to another client")
    if now >= order.expires_at:
        state.headless.remove(order)
        return json_error(*_EXPIRED)
    state.headless_poll_times.append(now)
    previous, order.last_poll = order.last_poll, now
    if previous is not None and now - previous < state.headless_interval:
        return json_error("slow_down", f"poll at most once every {state.headless_interval:g} seconds")
    person = find_person(order.person_id) if order.person_id is not None else None
    token_due = order.approved and person is not None
    fault = state.headless_faults.take(token_response=token_due)
    if fault is not None:
        log.info("headless poll for client %s answered with injected fault %s", client.client_id, fault)
        return _faulted(state, order, person, fault, now)
    if order.declined:
        state.headless.remove(order)
        return json_error("access_denied", "user declined")
    if person is not None and token_due:
        state.headless.remove(order)
        return _token_response(state, order, person, now)
    if order.hint == USER_SIGN:
        order.approved = True  # this poll reports userSign; the next one collects the token
    return _pending(order, now)


def _pending(order: HeadlessOrder, now: float) -> web.Response:
    waiting = "awaiting first user interaction" if order.hint == OUTSTANDING else "awaiting user identification"
    frame = animated_qr_data(order.qr_start_token, order.qr_start_secret, order.seconds_since_start(now))
    return json_error("authorization_pending", waiting, extra={"acr_data": {"qrData": frame, "hintCode": order.hint}})


def _token_response(
    state: DevIdpState,
    order: HeadlessOrder,
    person: TestPerson,
    now: float,
    *,
    key: SigningKey | None = None,
    audience: str | None = None,
) -> web.Response:
    claims = build_sebankid_id_token_claims(order, person, issuer=state.issuer, now=now, audience=audience)
    log.info("headless token issued to client %s for test person %s", order.client_id, person.id)
    return json_body(
        {
            "token_type": "Bearer",
            "expires_in": "120",  # a string, as in Idura's sample
            "id_token": jws.sign(claims, key or state.signing_key),
            "access_token": str(uuid.uuid4()),
        }
    )


def _faulted(
    state: DevIdpState, order: HeadlessOrder, person: TestPerson | None, fault: str, now: float
) -> web.Response:
    """The answer an injected fault gives instead of the real one (see FaultQueue)."""
    if fault in TOKEN_FAULTS:
        assert person is not None  # FaultQueue.take hands out token faults only for token responses
        state.headless.remove(order)  # a token response, defective or not, uses the order up
        if fault == "bad_id_token":
            return _token_response(state, order, person, now, key=_rogue_key(state))
        return _token_response(state, order, person, now, audience=WRONG_AUDIENCE)
    if fault == "slow_down":
        return json_error("slow_down", f"poll at most once every {state.headless_interval:g} seconds")
    if fault == "http_429":
        return web.Response(status=429, text="Too Many Requests", headers=NO_STORE)
    if fault == "http_500":
        return web.Response(status=500, text="Internal Server Error", headers=NO_STORE)
    if fault == "malformed_json":
        return web.Response(status=200, body=b"{not json", content_type="application/json", headers=NO_STORE)
    # expired_token / invalid_grant are final answers: the order goes, as it would for real.
    state.headless.remove(order)
    return json_error(*(_EXPIRED if fault == "expired_token" else _UNKNOWN))


def _rogue_key(state: DevIdpState) -> SigningKey:
    """Same kid and algorithm as the real key, but never published: signatures must fail."""
    if state.rogue_key is None:
        real = state.signing_key
        pem = generate_ec_pem() if real.alg.startswith("ES") else generate_rsa_pem(2048)
        state.rogue_key = signing_key_from_pem(pem, kid=real.kid, alg=real.alg)
    return state.rogue_key
