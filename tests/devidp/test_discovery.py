from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.devidp import DevClient, create_devidp_app
from gateway.keys import generate_ec_pem, signing_key_from_pem
from gateway.protocol import jws

from .driver import BANNER, ISSUER, REDIRECT_URI, Idp, MakeClient


async def test_discovery_document(idp: Idp) -> None:
    response = await idp.get("/.well-known/openid-configuration")
    assert response.status == 200
    doc = await response.json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert doc["token_endpoint"] == f"{ISSUER}/token"
    assert doc["userinfo_endpoint"] == f"{ISSUER}/userinfo"
    assert doc["jwks_uri"] == f"{ISSUER}/jwks"
    assert doc["end_session_endpoint"] == f"{ISSUER}/logout"
    assert doc["response_types_supported"] == ["code"]
    assert doc["response_modes_supported"] == ["query", "form_post"]
    assert doc["grant_types_supported"] == ["authorization_code"]
    assert doc["subject_types_supported"] == ["public"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert sorted(doc["token_endpoint_auth_methods_supported"]) == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    assert sorted(doc["token_endpoint_auth_signing_alg_values_supported"]) == ["ES256", "RS256"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "openid" in doc["scopes_supported"]
    assert {"sub", "nonce", "acr", "ssn", "name", "birthdate", "country"} <= set(doc["claims_supported"])
    assert doc["ui_locales_supported"] == ["sv", "nb", "da", "en"]
    assert doc["acr_values_supported"] == ["urn:eid:dev:loa3", "urn:eid:dev:loa4"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["request_uri_parameter_supported"] is False


async def test_jwks_has_public_keys_only(idp: Idp) -> None:
    response = await idp.get("/jwks")
    document = await response.json()
    assert len(document["keys"]) == 1
    key = document["keys"][0]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    assert jws.parse_jwks(document)


async def test_generated_key_is_rsa_2048(aiohttp_client: MakeClient) -> None:
    client = DevClient("c", (REDIRECT_URI,), "client_secret_post", client_secret="x")
    idp = await aiohttp_client(create_devidp_app(issuer=ISSUER, clients=[client]))
    key = (await (await idp.get("/jwks")).json())["keys"][0]
    modulus = base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4))
    assert (key["kty"], key["alg"], len(modulus) * 8) == ("RSA", "RS256", 2048)


async def test_unknown_path_is_an_html_page_with_banner(idp: Idp) -> None:
    response = await idp.get("/nope")
    assert response.status == 404
    assert BANNER in await response.text()
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_issuer_with_path_prefixes_the_routes(aiohttp_client: MakeClient) -> None:
    client = DevClient("c", (REDIRECT_URI,), "client_secret_post", client_secret="x")
    app = create_devidp_app(issuer="http://127.0.0.1:8081/idp", clients=[client])
    idp = await aiohttp_client(app)
    doc = await (await idp.get("/idp/.well-known/openid-configuration")).json()
    assert doc["token_endpoint"] == "http://127.0.0.1:8081/idp/token"


@pytest.mark.parametrize("issuer", ["127.0.0.1:8081", "http://127.0.0.1:8081/", "http://x/?a=b", "ftp://x"])
def test_bad_issuer_is_refused(issuer: str) -> None:
    with pytest.raises(ValueError):
        create_devidp_app(issuer=issuer, clients=[])


def test_duplicate_client_ids_are_refused() -> None:
    client = DevClient("c", (REDIRECT_URI,), "client_secret_post", client_secret="x")
    with pytest.raises(ValueError, match="unique"):
        create_devidp_app(issuer=ISSUER, clients=[client, client])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"auth_method": "none", "client_secret": "x"},
        {"auth_method": "client_secret_basic"},
        {"auth_method": "private_key_jwt"},
        {"auth_method": "client_secret_post", "client_secret": "x", "redirect_uris": ()},
        {"auth_method": "client_secret_post", "client_secret": "x", "redirect_uris": ("/relative",)},
        {"auth_method": "client_secret_post", "client_secret": "x", "redirect_uris": ("http://a/cb#frag",)},
        {"auth_method": "client_secret_post", "client_secret": "x", "redirect_uris": ("http://u:p@a/cb",)},
    ],
)
def test_misconfigured_clients_fail_early(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("redirect_uris", (REDIRECT_URI,))
    with pytest.raises(ValueError):
        DevClient("c", **kwargs)


def test_private_key_jwt_client_must_not_have_a_secret() -> None:
    public = signing_key_from_pem(generate_ec_pem()).public
    with pytest.raises(ValueError):
        DevClient("c", (REDIRECT_URI,), "private_key_jwt", client_secret="x", jwks=(public,))
