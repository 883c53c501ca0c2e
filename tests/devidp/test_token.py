"""Token endpoint negatives: client authentication, PKCE, code binding, single use, expiry."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aiohttp import ClientResponse

from gateway.keys import generate_ec_pem, generate_rsa_pem, signing_key_from_pem
from gateway.protocol.jws import SigningKey

from .conftest import BASIC_SECRET, POST_SECRET, FakeClock, Redeem
from .driver import (
    ISSUER,
    JWT_BEARER,
    REDIRECT_URI,
    TOKEN_ENDPOINT,
    Authorization,
    Idp,
    authorize,
    basic_auth,
    client_assertion,
    token_form,
)


async def error_of(response: ClientResponse, status: int, error: str) -> str:
    body = await response.json()
    assert (response.status, body["error"]) == (status, error), body
    assert response.headers["Cache-Control"] == "no-store"
    return str(body["error_description"])


async def post_with_assertion(idp: Idp, auth: Authorization, assertion: str) -> ClientResponse:
    form = token_form(auth, client_assertion_type=JWT_BEARER, client_assertion=assertion)
    return await idp.post("/token", data=form)


# --- client_secret_basic / client_secret_post ---------------------------------------------------


async def test_wrong_basic_secret(idp: Idp) -> None:
    auth = await authorize(idp, "basic-client")
    headers = {"Authorization": basic_auth("basic-client", "wrong")}
    response = await idp.post("/token", data=token_form(auth), headers=headers)
    await error_of(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


async def test_basic_credentials_must_be_form_urlencoded(idp: Idp) -> None:
    auth = await authorize(idp, "basic-client")
    raw = base64.b64encode(f"basic-client:{BASIC_SECRET}".encode()).decode()  # not encoded: '+' etc.
    response = await idp.post("/token", data=token_form(auth), headers={"Authorization": f"Basic {raw}"})
    await error_of(response, 401, "invalid_client")


async def test_wrong_post_secret(idp: Idp) -> None:
    auth = await authorize(idp, "post-client")
    form = token_form(auth, client_id="post-client", client_secret=POST_SECRET + "x")
    await error_of(await idp.post("/token", data=form), 401, "invalid_client")


async def test_basic_client_using_post_is_refused(idp: Idp) -> None:
    auth = await authorize(idp, "basic-client")
    form = token_form(auth, client_id="basic-client", client_secret=BASIC_SECRET)
    description = await error_of(await idp.post("/token", data=form), 401, "invalid_client")
    assert "client_secret_basic" in description


async def test_post_client_using_basic_is_refused(idp: Idp) -> None:
    auth = await authorize(idp, "post-client")
    headers = {"Authorization": basic_auth("post-client", POST_SECRET)}
    response = await idp.post("/token", data=token_form(auth), headers=headers)
    await error_of(response, 401, "invalid_client")
    assert "WWW-Authenticate" in response.headers


async def test_jwt_client_using_a_secret_is_refused(idp: Idp) -> None:
    auth = await authorize(idp, "jwt-client")
    headers = {"Authorization": basic_auth("jwt-client", "anything")}
    await error_of(await idp.post("/token", data=token_form(auth), headers=headers), 401, "invalid_client")


async def test_secret_client_using_an_assertion_is_refused(idp: Idp, client_key: SigningKey, clock: FakeClock) -> None:
    auth = await authorize(idp, "post-client")
    assertion = client_assertion(client_key, "post-client", clock())
    await error_of(await post_with_assertion(idp, auth, assertion), 401, "invalid_client")


async def test_no_client_authentication(idp: Idp) -> None:
    auth = await authorize(idp, "post-client")
    response = await idp.post("/token", data=token_form(auth, client_id="post-client"))
    await error_of(response, 401, "invalid_client")


async def test_two_authentication_methods_at_once(idp: Idp) -> None:
    auth = await authorize(idp, "basic-client")
    headers = {"Authorization": basic_auth("basic-client", BASIC_SECRET)}
    form = token_form(auth, client_id="basic-client", client_secret=BASIC_SECRET)
    await error_of(await idp.post("/token", data=form, headers=headers), 400, "invalid_request")


# --- private_key_jwt ----------------------------------------------------------------------------


async def test_replayed_jti(idp: Idp, client_key: SigningKey, clock: FakeClock) -> None:
    assertion = client_assertion(client_key, "jwt-client", clock())
    first = await authorize(idp, "jwt-client")
    assert (await post_with_assertion(idp, first, assertion)).status == 200
    second = await authorize(idp, "jwt-client")
    description = await error_of(await post_with_assertion(idp, second, assertion), 401, "invalid_client")
    assert "jti" in description


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": -1}, "expired"),
        ({"exp": 0}, "expired"),
        ({"exp": None}, "exp"),
        ({"exp": "soon"}, "exp"),
        ({"exp": 601}, "10 minutes"),
        ({"iat": 61}, "iat"),
        ({"nbf": 61}, "nbf"),
        ({"jti": None}, "jti"),
        ({"aud": "http://127.0.0.1:9999/token"}, "aud"),
        ({"aud": [ISSUER + "/"]}, "aud"),
        ({"aud": None}, "aud"),
        ({"iss": "someone-else"}, "iss"),
        ({"sub": "post-client"}, "registered"),
    ],
)
async def test_bad_assertion_claims(
    idp: Idp, client_key: SigningKey, clock: FakeClock, overrides: dict[str, Any], reason: str
) -> None:
    now = clock()
    relative = {
        k: (int(now) + v if k in ("exp", "iat", "nbf") and isinstance(v, int) else v) for k, v in overrides.items()
    }
    auth = await authorize(idp, "jwt-client")
    assertion = client_assertion(client_key, "jwt-client", now, **relative)
    description = await error_of(await post_with_assertion(idp, auth, assertion), 401, "invalid_client")
    assert reason in description


@pytest.mark.parametrize("aud", [ISSUER, TOKEN_ENDPOINT, ["other", ISSUER]])
async def test_accepted_audiences(idp: Idp, client_key: SigningKey, clock: FakeClock, aud: object) -> None:
    auth = await authorize(idp, "jwt-client")
    response = await post_with_assertion(idp, auth, client_assertion(client_key, "jwt-client", clock(), aud=aud))
    assert response.status == 200


async def test_assertion_signed_with_an_unregistered_key(idp: Idp, clock: FakeClock) -> None:
    for pem in (generate_ec_pem(), generate_rsa_pem()):
        stranger = signing_key_from_pem(pem, kid="client-ec-1")  # same kid, other key
        auth = await authorize(idp, "jwt-client")
        response = await post_with_assertion(idp, auth, client_assertion(stranger, "jwt-client", clock()))
        await error_of(response, 401, "invalid_client")


async def test_unsigned_assertion(idp: Idp, clock: FakeClock) -> None:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"iss": "jwt-client", "sub": "jwt-client", "aud": TOKEN_ENDPOINT, "jti": "x", "exp": int(clock()) + 60}
    auth = await authorize(idp, "jwt-client")
    token = f"{b64({'alg': 'none'})}.{b64(claims)}."
    await error_of(await post_with_assertion(idp, auth, token), 401, "invalid_client")


async def test_wrong_assertion_type(idp: Idp, client_key: SigningKey, clock: FakeClock) -> None:
    auth = await authorize(idp, "jwt-client")
    form = token_form(
        auth,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        client_assertion=client_assertion(client_key, "jwt-client", clock()),
    )
    await error_of(await idp.post("/token", data=form), 400, "invalid_request")


# --- the grant itself ---------------------------------------------------------------------------


async def test_pkce_mismatch_burns_the_code(idp: Idp, redeem: Redeem) -> None:
    auth = await authorize(idp, "post-client")
    other_verifier = "x" * 43
    await error_of(await redeem("post-client", auth, code_verifier=other_verifier), 400, "invalid_grant")
    await error_of(await redeem("post-client", auth), 400, "invalid_grant")


async def test_reused_code_fails_and_revokes_the_access_token(idp: Idp, redeem: Redeem) -> None:
    auth = await authorize(idp, "basic-client")
    tokens = await (await redeem("basic-client", auth)).json()
    description = await error_of(await redeem("basic-client", auth), 400, "invalid_grant")
    assert "already used" in description
    userinfo = await idp.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status == 401


async def test_code_expires_after_60_seconds(idp: Idp, redeem: Redeem, clock: FakeClock) -> None:
    auth = await authorize(idp, "post-client")
    clock.advance(60)
    await error_of(await redeem("post-client", auth), 400, "invalid_grant")


async def test_code_valid_just_before_expiry(idp: Idp, redeem: Redeem, clock: FakeClock) -> None:
    auth = await authorize(idp, "post-client")
    clock.advance(59)
    assert (await redeem("post-client", auth)).status == 200


async def test_redirect_uri_must_match(idp: Idp, redeem: Redeem) -> None:
    auth = await authorize(idp, "jwt-client")
    await error_of(await redeem("jwt-client", auth, redirect_uri=REDIRECT_URI + "/"), 400, "invalid_grant")


async def test_code_is_bound_to_the_client(idp: Idp, redeem: Redeem) -> None:
    auth = await authorize(idp, "basic-client")
    await error_of(await redeem("post-client", auth), 400, "invalid_grant")


async def test_unknown_code(idp: Idp, redeem: Redeem) -> None:
    auth = await authorize(idp, "post-client")
    await error_of(await redeem("post-client", auth, code="A" * 43), 400, "invalid_grant")


@pytest.mark.parametrize("missing", ["code", "redirect_uri", "code_verifier", "grant_type"])
async def test_missing_parameters(idp: Idp, redeem: Redeem, missing: str) -> None:
    auth = await authorize(idp, "post-client")
    await error_of(await redeem("post-client", auth, **{missing: None}), 400, "invalid_request")
    if missing != "code":  # a malformed request does not use up the code
        assert (await redeem("post-client", auth)).status == 200


async def test_unsupported_grant_type(idp: Idp, redeem: Redeem) -> None:
    auth = await authorize(idp, "post-client")
    response = await redeem("post-client", auth, grant_type="client_credentials")
    await error_of(response, 400, "unsupported_grant_type")


async def test_body_must_be_form_urlencoded(idp: Idp) -> None:
    auth = await authorize(idp, "post-client")
    form = token_form(auth, client_id="post-client", client_secret=POST_SECRET)
    await error_of(await idp.post("/token", json=form), 400, "invalid_request")


async def test_repeated_parameters(idp: Idp) -> None:
    auth = await authorize(idp, "post-client")
    form = list(token_form(auth, client_id="post-client", client_secret=POST_SECRET).items())
    form.append(("code", "other"))
    await error_of(await idp.post("/token", data=form), 400, "invalid_request")


# --- userinfo -----------------------------------------------------------------------------------


async def test_userinfo_needs_a_valid_bearer_token(idp: Idp, redeem: Redeem, clock: FakeClock) -> None:
    missing = await idp.get("/userinfo")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="devidp"'
    wrong = await idp.get("/userinfo", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]

    auth = await authorize(idp, "post-client")
    token = (await (await redeem("post-client", auth)).json())["access_token"]
    clock.advance(601)
    expired = await idp.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert expired.status == 401
