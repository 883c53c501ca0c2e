"""The whole authorization code flow, driven by hand, for each client authentication method."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from gateway.devidp import TEST_PERSONS
from gateway.protocol import jws

from .conftest import FakeClock, Redeem
from .driver import (
    BANNER,
    ISSUER,
    REDIRECT_URI,
    Authorization,
    Idp,
    authorize,
    authorize_params,
    choose,
    open_login_page,
    parse_forms,
    pkce_pair,
)

METHODS = ["basic-client", "post-client", "jwt-client"]


async def verify_id_token(idp: Idp, token: str) -> dict[str, Any]:
    keys = jws.parse_jwks(await (await idp.get("/jwks")).json())
    return jws.verify(token, keys, algorithms={"RS256"})


@pytest.mark.parametrize("client_id", METHODS)
async def test_code_flow(idp: Idp, redeem: Redeem, clock: FakeClock, client_id: str) -> None:
    auth = await authorize(idp, client_id, person="Åsa Öberg")
    assert len(auth.code) >= 43
    response = await redeem(client_id, auth)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    tokens = await response.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "id_token"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 600

    claims = await verify_id_token(idp, tokens["id_token"])
    asa = next(p for p in TEST_PERSONS if p.name == "Åsa Öberg")
    now = int(clock())
    assert claims["iss"] == ISSUER
    assert claims["aud"] == client_id and claims["azp"] == client_id
    assert claims["sub"] == asa.subject
    assert claims["nonce"] == auth.params["nonce"]
    assert (claims["iat"], claims["exp"], claims["auth_time"]) == (now, now + 300, now)
    assert claims["acr"] == "urn:eid:dev:loa3" and claims["amr"] == ["dev"]
    assert {k: claims[k] for k in asa.claims()} == {
        "ssn": "199003152387",
        "name": "Åsa Öberg",
        "given_name": "Åsa",
        "family_name": "Öberg",
        "country": "SE",
        "birthdate": "1990-03-15",
    }
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    userinfo = await idp.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status == 200
    assert await userinfo.json() == {"sub": asa.subject, **asa.claims()}


async def test_id_token_header_names_the_jwks_key(idp: Idp, redeem: Redeem) -> None:
    auth = await authorize(idp, "post-client")
    token = (await (await redeem("post-client", auth)).json())["id_token"]
    header = jws.read_header(token)
    jwk = (await (await idp.get("/jwks")).json())["keys"][0]
    assert (header["alg"], header["kid"]) == ("RS256", jwk["kid"])


@pytest.mark.parametrize(
    ("acr_values", "expected"),
    [
        ("urn:eid:dev:loa4", "urn:eid:dev:loa4"),
        ("urn:other urn:eid:dev:loa4 urn:eid:dev:loa3", "urn:eid:dev:loa4"),
        ("urn:bankid:bid", "urn:eid:dev:loa3"),
        (None, "urn:eid:dev:loa3"),
    ],
)
async def test_acr(idp: Idp, redeem: Redeem, acr_values: str | None, expected: str) -> None:
    auth = await authorize(idp, "post-client", acr_values=acr_values)
    claims = jws.unverified_claims((await (await redeem("post-client", auth)).json())["id_token"])
    assert claims["acr"] == expected


async def test_optional_parameters_are_accepted(idp: Idp, redeem: Redeem) -> None:
    auth = await authorize(
        idp,
        "basic-client",
        person="Kari Nordmann",
        prompt="login",
        ui_locales="nb en",
        login_hint="BID:27034698436",
        response_mode="query",
    )
    claims = jws.unverified_claims((await (await redeem("basic-client", auth)).json())["id_token"])
    assert (claims["ssn"], claims["country"]) == ("27034698436", "NO")


async def test_form_post(idp: Idp, redeem: Redeem) -> None:
    verifier, challenge = pkce_pair()
    params = authorize_params("jwt-client", challenge, response_mode="form_post")
    page = await open_login_page(idp, params)
    response = await choose(idp, page, "Log in as Jens Hansen")
    assert response.status == 200 and "Location" not in response.headers
    html = await response.text()
    assert BANNER in html
    (form,) = parse_forms(html)
    assert (form.action, form.method) == (REDIRECT_URI, "post")
    assert set(form.fields) == {"code", "state", "iss"}
    assert form.fields["state"] == params["state"] and form.fields["iss"] == ISSUER
    assert form.buttons == ["Continue"]  # works without JavaScript too

    csp = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'<script nonce="{nonce.group(1)}">' in html
    assert "form-action 'self' http://127.0.0.1:8080" in csp and "default-src 'none'" in csp
    auth = Authorization(params, verifier, form.fields["code"])
    assert (await redeem("jwt-client", auth)).status == 200
