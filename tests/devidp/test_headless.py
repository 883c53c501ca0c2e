"""Idura's Headless flow at the dev IdP: wire format, client authentication, polling, faults."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from typing import Any

import pytest

from gateway.devidp import TEST_PERSONS, DevClient, create_devidp_app
from gateway.devidp.bankid_qr import animated_qr_data, frame_matches, parse_qr_data
from gateway.keys import generate_ec_pem, signing_key_from_pem
from gateway.protocol import jws
from gateway.protocol.jws import SigningKey

from .conftest import FakeClock
from .driver import ISSUER, TOKEN_ENDPOINT, Idp, MakeClient
from .headless_driver import (
    END_USER_IP,
    QR_DATA,
    SE_BANKID,
    UUID4,
    Headless,
    error_of,
    json_of,
    order_of,
    qr_frame,
    state_of,
)

METHODS = ["basic-client", "post-client", "jwt-client"]
GUID_IN_BRACES = re.compile(r"^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$")


@pytest.fixture
def headless(idp: Idp, client_key: SigningKey, clock: FakeClock) -> Headless:
    return Headless(idp, client_key, clock)


async def verify_id_token(idp: Idp, token: str) -> dict[str, Any]:
    keys = jws.parse_jwks(await (await idp.get("/jwks")).json())
    return jws.verify(token, keys, algorithms={"RS256"})


async def approve(headless: Headless, req_id: str, person: str = "se-asa") -> dict[str, Any]:
    """Identify through the JSON controls, see userSign once, then collect the token response."""
    auto_start = order_of(headless.idp, req_id).auto_start_token
    await headless.control("identify", autoStartToken=auto_start, person=person)
    await headless.pending(req_id, "userSign")
    return await headless.collect(req_id)


# --- POST /headless/authorize ---------------------------------------------------------------------


@pytest.mark.parametrize("client_id", METHODS)
async def test_start_response_is_exactly_idura_shaped(headless: Headless, client_id: str) -> None:
    response = await headless.start_response(client_id)
    raw = await response.text()
    body = await json_of(response, 200)
    assert response.content_type == "application/json"
    assert set(body) == {"headless_req_id", "expires_in", "acr_data"}
    assert set(body["acr_data"]) == {"qrData", "autoStartToken"}
    assert UUID4.match(body["headless_req_id"]) and UUID4.match(body["acr_data"]["autoStartToken"])
    assert body["expires_in"] == 120 and type(body["expires_in"]) is int

    qr_data = body["acr_data"]["qrData"]
    assert QR_DATA.match(qr_data)
    order = order_of(headless.idp, body["headless_req_id"])
    mac = hmac.new(order.qr_start_secret.encode(), b"0", hashlib.sha256).hexdigest()
    assert qr_data == f"bankid.{order.qr_start_token}.0.{mac}"  # verifies with the order's secret
    frame = parse_qr_data(qr_data)
    assert frame is not None and frame_matches(frame, order.qr_start_secret)
    assert order.qr_start_secret not in raw  # the secret never leaves the IdP
    assert order.client_id == client_id and order.end_user_ip == END_USER_IP


def test_qr_algorithm_matches_the_published_vector() -> None:
    token, secret = "67df3917-fa0d-44e5-b327-edcc928297f8", "d28db9a7-4cde-429e-a983-359be676944c"
    frames = [animated_qr_data(token, secret, t) for t in (0, 1)]
    assert frames == [
        f"bankid.{token}.0.dc69358e712458a66a7525beef148ae8526b1c71610eff2c16cdffb4cdac9bf8",
        f"bankid.{token}.1.949d559bf23403952a94d103e67743126381eda00f0b3cbddbf7c96b1adcbce2",
    ]
    for t, frame in enumerate(frames):
        parsed = parse_qr_data(frame)
        assert parsed is not None and parsed.seconds == t and frame_matches(parsed, secret)
        assert not frame_matches(parsed, "d28db9a7-4cde-429e-a983-359be676944d")


async def test_every_order_has_its_own_tokens_and_secret(headless: Headless) -> None:
    orders = [order_of(headless.idp, (await headless.start())["headless_req_id"]) for _ in range(3)]
    for attribute in ("req_id", "qr_start_token", "qr_start_secret", "auto_start_token", "order_id"):
        assert len({getattr(o, attribute) for o in orders}) == 3


@pytest.mark.parametrize("acr", [SE_BANKID, f"{SE_BANKID}:same-device", f"{SE_BANKID}:another-device:qr"])
async def test_start_accepts_the_swedish_bankid_acr_values(headless: Headless, acr: str) -> None:
    body = await headless.start(acr_values=acr)
    assert order_of(headless.idp, body["headless_req_id"]).acr == acr


@pytest.mark.parametrize("ip", ["203.0.113.7", "2001:db8::1", "::1"])
async def test_start_accepts_ipv4_and_ipv6(headless: Headless, ip: str) -> None:
    assert (await headless.start_response(end_user_ip=ip)).status == 200


async def test_start_accepts_extra_scopes(headless: Headless) -> None:
    assert (await headless.start_response(scope="openid evidence")).status == 200


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"scope": None}, "invalid_request"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"scope": "openidx"}, "invalid_scope"),
        ({"acr_values": None}, "invalid_request"),
        ({"acr_values": "urn:grn:authn:no:bankid"}, "invalid_request"),
        ({"acr_values": f"{SE_BANKID}:another-device"}, "invalid_request"),
        ({"acr_values": f"{SE_BANKID} {SE_BANKID}:same-device"}, "invalid_request"),
        ({"end_user_ip": None}, "invalid_request"),
        ({"end_user_ip": "not-an-ip"}, "invalid_request"),
        ({"end_user_ip": "192.0.2.256"}, "invalid_request"),
        ({"end_user_ip": "192.0.2.1/24"}, "invalid_request"),
    ],
)
async def test_start_parameter_errors(headless: Headless, overrides: dict[str, Any], error: str) -> None:
    await error_of(await headless.start_response(**overrides), 400, error)
    assert len(state_of(headless.idp).headless) == 0


async def test_start_needs_a_form_body(headless: Headless, idp: Idp) -> None:
    await error_of(await idp.post("/headless/authorize", json={"scope": "openid"}), 400, "invalid_request")


async def test_start_refuses_repeated_parameters(headless: Headless, idp: Idp) -> None:
    form = {"scope": "openid", "acr_values": SE_BANKID, "end_user_ip": END_USER_IP}
    headless.authenticate(form, "jwt-client")
    response = await idp.post("/headless/authorize", data=[*form.items(), ("scope", "openid")])
    await error_of(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("assertion", "reason"),
    [
        ({"aud": "http://127.0.0.1:9999"}, "aud"),
        ({"aud": ISSUER + "/headless/authorize"}, "aud"),
        ({"iss": "someone-else"}, "iss"),
        ({"jti": None}, "jti"),
        ({"exp": -1}, "expired"),
        ({"exp": 301}, "5 minutes"),
        ({"exp": 600}, "5 minutes"),  # fine for the code flow, too long for headless (Idura)
    ],
)
async def test_start_assertion_checks(
    headless: Headless, clock: FakeClock, assertion: dict[str, Any], reason: str
) -> None:
    relative = {k: int(clock()) + v if k == "exp" else v for k, v in assertion.items()}
    description = await error_of(await headless.start_response(assertion=relative), 401, "invalid_client")
    assert reason in description


@pytest.mark.parametrize("aud", [ISSUER, TOKEN_ENDPOINT])
async def test_start_assertion_audiences(headless: Headless, clock: FakeClock, aud: str) -> None:
    response = await headless.start_response(assertion={"aud": aud, "exp": int(clock()) + 300})
    assert response.status == 200


async def test_start_assertion_with_a_stranger_key(headless: Headless) -> None:
    headless.client_key = signing_key_from_pem(generate_ec_pem(), kid="client-ec-1")
    await error_of(await headless.start_response(), 401, "invalid_client")


async def test_start_assertion_replay(headless: Headless, idp: Idp) -> None:
    form = {"scope": "openid", "acr_values": SE_BANKID, "end_user_ip": END_USER_IP}
    headless.authenticate(form, "jwt-client")
    assert (await idp.post("/headless/authorize", data=form)).status == 200
    description = await error_of(await idp.post("/headless/authorize", data=form), 401, "invalid_client")
    assert "jti" in description


async def test_start_secret_clients(headless: Headless, idp: Idp) -> None:
    await error_of(await headless.start_response(client_id="unknown"), 401, "invalid_client")
    form = {"scope": "openid", "acr_values": SE_BANKID, "end_user_ip": END_USER_IP}
    response = await idp.post("/headless/authorize", data={**form, "client_id": "post-client", "client_secret": "x"})
    await error_of(response, 401, "invalid_client")
    missing = await idp.post("/headless/authorize", data=form)
    await error_of(missing, 401, "invalid_client")
    assert missing.headers["WWW-Authenticate"].startswith("Basic ")


# --- polling ------------------------------------------------------------------------------------------


async def test_pending_response_shape_and_fresh_qr_frames(headless: Headless, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    order = order_of(headless.idp, req_id)
    for elapsed in (0, 7, 12):
        clock.now = order.created_at + elapsed + 0.5
        response = await headless.poll(req_id)
        body = await json_of(response, 400)
        assert body == {
            "error": "authorization_pending",
            "error_description": "awaiting first user interaction",
            "acr_data": {"qrData": qr_frame(order, elapsed), "hintCode": "outstandingTransaction"},
        }
        assert QR_DATA.match(body["acr_data"]["qrData"])


async def test_hint_progression_through_the_json_controls(headless: Headless, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    qr_data = await headless.pending(req_id, "outstandingTransaction")
    order_id = (await headless.control("scan", qrData=qr_data))["order"]
    assert set(await headless.control("scan", qrData=qr_data)) == {"order"}  # opening again: no change
    assert order_id != req_id and order_id == order_of(headless.idp, req_id).order_id

    clock.advance(5)
    body = await json_of(await headless.poll(req_id), 400)
    assert body["error_description"] == "awaiting user identification"
    assert body["acr_data"]["hintCode"] == "started"

    assert (await headless.control("identify", order=order_id, person="se-sven"))["order"] == order_id
    clock.advance(5)
    body = await json_of(await headless.poll(req_id), 400)
    assert (body["error_description"], body["acr_data"]["hintCode"]) == ("awaiting user identification", "userSign")

    tokens = await headless.collect(req_id)
    assert set(tokens) == {"token_type", "expires_in", "id_token", "access_token"}
    clock.advance(5)
    await error_of(await headless.poll(req_id), 400, "invalid_grant")  # single use


async def test_identify_scans_when_needed(headless: Headless) -> None:
    req_id = (await headless.start())["headless_req_id"]
    await headless.control("identify", autoStartToken=order_of(headless.idp, req_id).auto_start_token, person="se-asa")
    await headless.pending(req_id, "userSign")


async def test_token_response_and_id_token(headless: Headless, clock: FakeClock) -> None:
    req_id = (await headless.start("jwt-client", end_user_ip="2001:db8::7"))["headless_req_id"]
    response_body = await approve(headless, req_id, "se-asa")
    assert response_body["token_type"] == "Bearer"
    assert response_body["expires_in"] == "120"  # a string, as in Idura's sample
    assert UUID4.match(response_body["access_token"])

    token = response_body["id_token"]
    assert jws.read_header(token)["alg"] == "RS256"
    claims = await verify_id_token(headless.idp, token)
    now = int(clock())
    asa = next(p for p in TEST_PERSONS if p.id == "se-asa")
    assert claims["iss"] == ISSUER and claims["aud"] == "jwt-client"
    assert GUID_IN_BRACES.match(claims["sub"])
    assert claims["nameidentifier"] == claims["sub"].strip("{}").replace("-", "")
    assert (claims["identityscheme"], claims["authenticationtype"]) == ("sebankid", "urn:grn:authn:se:bankid")
    assert {k: claims[k] for k in ("ssn", "name", "given_name", "family_name", "country")} == {
        "ssn": asa.ssn,
        "name": "Åsa Öberg",
        "given_name": "Åsa",
        "family_name": "Öberg",
        "country": "SE",
    }
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (now, now, now + 1200)
    assert claims["ipaddress"] == "2001:db8::7"
    assert claims["authenticationinstant"].endswith("Z")
    assert not {"nonce", "acr", "amr", "birthdate"} & set(claims)


async def test_subject_is_stable_per_person(headless: Headless) -> None:
    subjects = []
    for person in ("se-asa", "se-asa", "se-sven"):
        req_id = (await headless.start())["headless_req_id"]
        token = (await approve(headless, req_id, person))["id_token"]
        subjects.append(jws.unverified_claims(token)["sub"])
    assert subjects[0] == subjects[1] != subjects[2]


async def test_only_swedish_persons_can_identify(headless: Headless) -> None:
    req_id = (await headless.start())["headless_req_id"]
    token = order_of(headless.idp, req_id).auto_start_token
    for person in ("no-kari", "dk-jens", "nobody"):
        body = await headless.control("identify", 400, autoStartToken=token, person=person)
        assert body["error"] == "invalid_request"
    await headless.pending(req_id, "outstandingTransaction")


@pytest.mark.parametrize("when", ["outstandingTransaction", "started", "userSign"])
async def test_decline_gives_access_denied_once(headless: Headless, clock: FakeClock, when: str) -> None:
    req_id = (await headless.start())["headless_req_id"]
    token = order_of(headless.idp, req_id).auto_start_token
    if when != "outstandingTransaction":
        await headless.control("scan", autoStartToken=token)
    if when == "userSign":  # the person was chosen, then Cancel instead of the security code
        await headless.control("identify", autoStartToken=token, person="se-sven")
    await headless.control("decline", autoStartToken=token)
    clock.advance(5)
    body = await json_of(await headless.poll(req_id), 400)
    assert body == {"error": "access_denied", "error_description": "user declined"}
    clock.advance(5)
    await error_of(await headless.poll(req_id), 400, "invalid_grant")


async def test_cannot_decline_once_approved(headless: Headless) -> None:
    req_id = (await headless.start())["headless_req_id"]
    token = order_of(headless.idp, req_id).auto_start_token
    await headless.control("identify", autoStartToken=token, person="se-sven")
    await headless.pending(req_id, "userSign")
    await headless.control("decline", 400, autoStartToken=token)
    assert (await headless.collect(req_id))["token_type"] == "Bearer"


async def test_slow_down_with_a_driven_clock(headless: Headless, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    await json_of(await headless.poll(req_id), 400)  # the first poll may come at once
    clock.advance(4.9)
    description = await error_of(await headless.poll(req_id), 400, "slow_down")
    assert "5 seconds" in description
    clock.advance(4.9)  # 9.8 s after the last answered poll, but a too-fast poll also counts
    await error_of(await headless.poll(req_id), 400, "slow_down")
    clock.advance(5)
    assert (await json_of(await headless.poll(req_id), 400))["error"] == "authorization_pending"


async def test_slow_down_is_per_order(headless: Headless, clock: FakeClock) -> None:
    first = (await headless.start())["headless_req_id"]
    second = (await headless.start())["headless_req_id"]
    await json_of(await headless.poll(first), 400)
    assert (await json_of(await headless.poll(second), 400))["error"] == "authorization_pending"


async def test_slow_down_with_a_small_real_interval(
    aiohttp_client: MakeClient, clients: list[DevClient], idp_key: SigningKey, client_key: SigningKey
) -> None:
    app = create_devidp_app(issuer=ISSUER, clients=clients, signing_key=idp_key, headless_interval=0.2)
    idp = await aiohttp_client(app)
    real = FakeClock()  # only used to stamp client assertions
    headless = Headless(idp, client_key, real)
    real.now = time.time()
    req_id = (await headless.start())["headless_req_id"]
    await json_of(await headless.poll(req_id), 400)
    await error_of(await headless.poll(req_id), 400, "slow_down")
    await asyncio.sleep(0.25)
    body = await json_of(await headless.poll(req_id), 400)
    assert body["error"] == "authorization_pending"


async def test_expiry(headless: Headless, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    created = order_of(headless.idp, req_id).created_at
    clock.now = created + 119.5
    await json_of(await headless.poll(req_id), 400)
    clock.now = created + 125
    await error_of(await headless.poll(req_id), 400, "expired_token")
    clock.advance(5)
    await error_of(await headless.poll(req_id), 400, "invalid_grant")  # the order is gone


async def test_expiry_without_any_poll_before(headless: Headless, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    clock.advance(120)
    await error_of(await headless.poll(req_id), 400, "expired_token")


async def test_custom_lifetime(
    aiohttp_client: MakeClient, clients: list[DevClient], idp_key: SigningKey, client_key: SigningKey, clock: FakeClock
) -> None:
    app = create_devidp_app(issuer=ISSUER, clients=clients, signing_key=idp_key, clock=clock, headless_expires_in=30)
    headless = Headless(await aiohttp_client(app), client_key, clock)
    body = await headless.start()
    assert body["expires_in"] == 30
    clock.advance(30)
    await error_of(await headless.poll(body["headless_req_id"]), 400, "expired_token")


@pytest.mark.parametrize(
    ("interval", "expires_in"), [(-1.0, 120), (float("nan"), 120), (5.0, 0), (5.0, 1.5), (5.0, 86_401)]
)
def test_bad_headless_options(clients: list[DevClient], interval: float, expires_in: Any) -> None:
    with pytest.raises(ValueError, match="headless"):
        create_devidp_app(issuer=ISSUER, clients=clients, headless_interval=interval, headless_expires_in=expires_in)


async def test_unknown_or_foreign_request_id(headless: Headless, clock: FakeClock) -> None:
    req_id = (await headless.start("jwt-client"))["headless_req_id"]
    await error_of(await headless.poll("3857f8ff-21b9-48ae-a732-a3bd8128a7ae"), 400, "invalid_grant")
    await error_of(await headless.poll(req_id, "post-client"), 400, "invalid_grant")
    await headless.pending(req_id, "outstandingTransaction")  # the owner can still poll it


async def test_missing_request_id(headless: Headless, idp: Idp) -> None:
    form = {"grant_type": "urn:grn:params:grant-type:headless"}
    headless.authenticate(form, "jwt-client")
    await error_of(await idp.post("/token", data=form), 400, "invalid_request")


@pytest.mark.parametrize(
    ("assertion", "reason"),
    [
        ({"aud": "http://127.0.0.1:9999/token"}, "aud"),
        ({"exp": -1}, "expired"),
        ({"exp": 301}, "5 minutes"),
        ({"sub": "post-client"}, "registered"),
    ],
)
async def test_poll_assertion_checks(
    headless: Headless, clock: FakeClock, assertion: dict[str, Any], reason: str
) -> None:
    req_id = (await headless.start())["headless_req_id"]
    relative = {k: int(clock()) + v if k == "exp" else v for k, v in assertion.items()}
    description = await error_of(await headless.poll(req_id, assertion=relative), 401, "invalid_client")
    assert reason in description


async def test_poll_assertion_replay_and_bad_signature(headless: Headless, idp: Idp, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    form = {"grant_type": "urn:grn:params:grant-type:headless", "headless_req_id": req_id}
    headless.authenticate(form, "jwt-client")
    await json_of(await idp.post("/token", data=form), 400)
    clock.advance(5)
    description = await error_of(await idp.post("/token", data=form), 401, "invalid_client")
    assert "jti" in description
    headless.client_key = signing_key_from_pem(generate_ec_pem(), kid="client-ec-1")
    await error_of(await headless.poll(req_id), 401, "invalid_client")


@pytest.mark.parametrize("client_id", ["basic-client", "post-client"])
async def test_secret_clients_complete_the_flow(headless: Headless, client_id: str) -> None:
    req_id = (await headless.start(client_id))["headless_req_id"]
    token = order_of(headless.idp, req_id).auto_start_token
    await headless.control("identify", autoStartToken=token, person="se-sven")
    await headless.pending(req_id, "userSign", client_id)
    claims = await verify_id_token(headless.idp, (await headless.collect(req_id, client_id))["id_token"])
    assert claims["aud"] == client_id and claims["ssn"] == "196802020575"


async def test_discovery_is_unchanged_by_headless(idp: Idp) -> None:
    # Idura does not advertise headless in discovery; neither does the dev IdP.
    doc = await (await idp.get("/.well-known/openid-configuration")).json()
    assert doc["grant_types_supported"] == ["authorization_code"]


# --- fault injection ----------------------------------------------------------------------------------


async def test_transient_faults_replace_the_answer_but_keep_the_order(headless: Headless, clock: FakeClock) -> None:
    req_id = (await headless.start())["headless_req_id"]
    await headless.control("identify", autoStartToken=order_of(headless.idp, req_id).auto_start_token, person="se-sven")
    await headless.fault("slow_down", 2)
    assert await headless.fault("http_429") == ["slow_down", "slow_down", "http_429"]
    await headless.fault("http_500")
    await headless.fault("malformed_json")

    for _ in range(2):
        clock.advance(5)
        await error_of(await headless.poll(req_id), 400, "slow_down")
    clock.advance(5)
    too_many = await headless.poll(req_id)
    assert too_many.status == 429
    clock.advance(5)
    assert (await headless.poll(req_id)).status == 500
    clock.advance(5)
    malformed = await headless.poll(req_id)
    assert (malformed.status, await malformed.text()) == (200, "{not json")
    assert malformed.content_type == "application/json"
    assert await headless.queued_faults() == []
    # None of them moved the order on: userSign is still to be seen, then the token.
    await headless.pending(req_id, "userSign")
    assert (await headless.collect(req_id))["token_type"] == "Bearer"


@pytest.mark.parametrize("fault", ["expired_token", "invalid_grant"])
async def test_final_faults_end_the_order(headless: Headless, clock: FakeClock, fault: str) -> None:
    req_id = (await headless.start())["headless_req_id"]
    await headless.fault(fault)
    await error_of(await headless.poll(req_id), 400, fault)
    clock.advance(5)
    await error_of(await headless.poll(req_id), 400, "invalid_grant")


async def test_bad_id_token_fault(headless: Headless) -> None:
    req_id = (await headless.start())["headless_req_id"]
    await headless.fault("bad_id_token")
    await headless.pending(req_id, "outstandingTransaction")  # token faults wait for a token
    assert await headless.queued_faults() == ["bad_id_token"]
    body = await approve(headless, req_id)
    assert set(body) == {"token_type", "expires_in", "id_token", "access_token"}
    token = body["id_token"]
    jwk = (await (await headless.idp.get("/jwks")).json())["keys"][0]
    assert jws.read_header(token)["kid"] == jwk["kid"]  # same kid, other key
    with pytest.raises(jws.JoseError, match="bad_signature"):
        await verify_id_token(headless.idp, token)
    claims = jws.unverified_claims(token)
    assert claims["aud"] == "jwt-client" and claims["iss"] == ISSUER
    await error_of(await headless.poll(req_id), 400, "invalid_grant")  # used up all the same


async def test_wrong_audience_fault(headless: Headless) -> None:
    req_id = (await headless.start())["headless_req_id"]
    await headless.fault("wrong_audience")
    claims = await verify_id_token(headless.idp, (await approve(headless, req_id))["id_token"])
    assert claims["aud"] == "someone-else" and claims["ssn"] == "199003152387"


async def test_faults_apply_to_any_order(headless: Headless) -> None:
    first = (await headless.start())["headless_req_id"]
    second = (await headless.start("post-client"))["headless_req_id"]
    await headless.fault("http_500", 2)
    assert (await headless.poll(first)).status == 500
    assert (await headless.poll(second, "post-client")).status == 500
    await headless.pending(first, "outstandingTransaction")


async def test_faults_never_skip_the_checks(headless: Headless, clock: FakeClock, idp: Idp) -> None:
    req_id = (await headless.start())["headless_req_id"]
    await headless.fault("http_500")
    await error_of(await headless.poll("unknown"), 400, "invalid_grant")
    await error_of(await headless.poll(req_id, "post-client"), 400, "invalid_grant")
    await error_of(await headless.poll(req_id, assertion={"aud": "elsewhere"}), 401, "invalid_client")
    assert await headless.queued_faults() == ["http_500"]
    assert (await headless.poll(req_id)).status == 500
    await error_of(await headless.poll(req_id), 400, "slow_down")  # the real check, right after
    await headless.fault("http_500")
    clock.advance(200)
    await error_of(await headless.poll(req_id), 400, "expired_token")
    assert await headless.queued_faults() == ["http_500"]


async def test_clearing_faults(headless: Headless, idp: Idp) -> None:
    await headless.fault("http_500", 3)
    body = await json_of(await idp.delete("/_dev/headless/faults"), 200)
    assert body == {"faults": []}
    req_id = (await headless.start())["headless_req_id"]
    assert (await headless.poll(req_id)).status == 400


@pytest.mark.parametrize(
    "body",
    [
        {"fault": "nope"},
        {"fault": "http_500", "count": 0},
        {"fault": "http_500", "count": "2"},
        {"fault": "http_500", "count": True},
        {"fault": "http_500", "count": 1001},
        {"fault": "http_500", "extra": 1},
        {"count": 1},
        ["http_500"],
    ],
)
async def test_fault_requests_are_checked(idp: Idp, body: Any) -> None:
    await error_of(await idp.post("/_dev/headless/faults", json=body), 400, "invalid_request")


async def test_fault_request_must_be_json(idp: Idp) -> None:
    response = await idp.post("/_dev/headless/faults", data={"fault": "http_500"})
    await error_of(response, 400, "invalid_request")
    response = await idp.post("/_dev/headless/faults", data="{nope", headers={"Content-Type": "application/json"})
    await error_of(response, 400, "invalid_request")
