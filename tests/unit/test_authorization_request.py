"""How the authorization request travels (PAR, request objects) and the per-login parameters an application
may ask for; UserInfo's checks and how its claims join the ID token's."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import BadRequestError, IdpUnavailableError, ProviderRefusedError, TokenValidationError
from gateway.protocol import authorization_request as ar
from gateway.protocol import oidc

PARAMS = oidc.authorization_parameters(
    client_id="gw",
    redirect_uri="https://gw.example/_auth/callback/p",
    scopes=("openid", "profile"),
    state="st",
    nonce="no",
    code_challenge="ch",
    acr_values=("urn:bankid:bid",),
)


@pytest.mark.parametrize(
    ("mode", "endpoint", "required", "expected"),
    [
        ("off", "https://op/par", True, False),
        ("auto", "https://op/par", False, False),
        ("auto", "https://op/par", True, True),
        ("auto", None, False, False),
        ("required", "https://op/par", False, True),
    ],
)
def test_when_a_login_is_pushed(mode: str, endpoint: str | None, required: bool, expected: bool) -> None:
    assert ar.use_par(mode, endpoint=endpoint, required_by_discovery=required) is expected


@pytest.mark.parametrize(("mode", "required"), [("required", False), ("auto", True)])
def test_par_required_without_an_endpoint_is_the_providers_fault_not_a_fallback(mode: str, required: bool) -> None:
    with pytest.raises(IdpUnavailableError) as raised:
        ar.use_par(mode, endpoint=None, required_by_discovery=required)
    assert raised.value.reason == "par_endpoint_missing"


def test_a_request_object_carries_every_parameter_and_a_short_life() -> None:
    claims = ar.request_object_claims(PARAMS, client_id="gw", audience="https://op", now=1000.0)
    assert {k: claims[k] for k in PARAMS} == PARAMS
    assert (claims["iss"], claims["aud"], claims["iat"], claims["nbf"], claims["exp"]) == (
        "gw",
        "https://op",
        1000,
        1000,
        1300,
    )
    assert claims["jti"] != ar.request_object_claims(PARAMS, client_id="gw", audience="https://op", now=1000.0)["jti"]


def test_without_par_the_query_keeps_only_what_oauth_needs_beside_the_object() -> None:
    query = ar.front_channel_with_request_object(PARAMS, "eyJ.x.y")
    assert query == {"client_id": "gw", "response_type": "code", "scope": "openid profile", "request": "eyJ.x.y"}
    assert "state" not in query and "nonce" not in query


def test_after_a_push_the_browser_carries_only_client_id_and_request_uri() -> None:
    pushed = ar.parse_par_response(201, {"request_uri": "urn:ietf:params:oauth:request_uri:abc", "expires_in": 60})
    assert ar.front_channel_after_par("gw", pushed) == {
        "client_id": "gw",
        "request_uri": "urn:ietf:params:oauth:request_uri:abc",
    }


@pytest.mark.parametrize(
    ("status", "document", "error", "reason"),
    [
        (None, None, IdpUnavailableError, "par_endpoint_unreachable"),
        (503, {"error": "temporarily_unavailable"}, IdpUnavailableError, "par_endpoint_error"),
        (400, {"error": "invalid_request_object"}, ProviderRefusedError, "par_invalid_request_object"),
        (401, {"error": "invalid_client"}, ProviderRefusedError, "par_invalid_client"),
        (400, {"error": "made<up>"}, ProviderRefusedError, "par_error"),
        (400, "not json", ProviderRefusedError, "par_error"),
        (201, [], ProviderRefusedError, "par_malformed_response"),
        (201, {"expires_in": 60}, ProviderRefusedError, "par_malformed_response"),
        (201, {"request_uri": "", "expires_in": 60}, ProviderRefusedError, "par_malformed_response"),
        (201, {"request_uri": "urn:x y", "expires_in": 60}, ProviderRefusedError, "par_malformed_response"),
        (201, {"request_uri": "urn:x\r\n", "expires_in": 60}, ProviderRefusedError, "par_malformed_response"),
        (201, {"request_uri": "urn:" + "x" * 2048, "expires_in": 60}, ProviderRefusedError, "par_malformed_response"),
        (201, {"request_uri": "urn:x"}, ProviderRefusedError, "par_malformed_response"),
        (201, {"request_uri": "urn:x", "expires_in": 0}, ProviderRefusedError, "par_malformed_response"),
        (201, {"request_uri": "urn:x", "expires_in": True}, ProviderRefusedError, "par_malformed_response"),
        (201, {"request_uri": "urn:x", "expires_in": "60"}, ProviderRefusedError, "par_malformed_response"),
        (201, {"request_uri": "urn:x", "expires_in": 86400}, ProviderRefusedError, "par_malformed_response"),
    ],
)
def test_a_par_answer_that_is_not_a_request_uri_refuses_the_login(
    status: int | None, document: Any, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error) as raised:
        ar.parse_par_response(status, document)
    assert raised.value.reason == reason  # type: ignore[attr-defined]


def test_a_provider_refusal_renders_as_a_502_page_of_its_own() -> None:
    refused = ProviderRefusedError("par_invalid_client")
    assert (refused.status, refused.code) == (502, "provider_refused")


def test_per_login_acr_values_only_from_the_providers_list() -> None:
    allowed = ("urn:bankid:bid", "urn:bankid:bis")
    assert ar.requested_acr_values(None, allowed) is None
    assert ar.requested_acr_values("urn:bankid:bis", allowed) == ("urn:bankid:bis",)
    for bad in (
        "",
        "urn:bankid:bim",
        "urn:bankid:bid urn:bankid:bid",
        "urn:bankid:bid  urn:bankid:bis",
        "URN:BANKID:BID",
    ):
        with pytest.raises(BadRequestError) as raised:
            ar.requested_acr_values(bad, allowed)
        assert raised.value.reason == "acr_values_not_allowed"


def test_per_login_ui_locales_are_language_tags_only() -> None:
    assert ar.requested_ui_locales("nb sv-SE en") == ("nb", "sv-SE", "en")
    for bad in ("", "nb,sv", "nb  sv", "a b c d e f", "<script>", "en\r\nX: y", "x" * 40):
        with pytest.raises(BadRequestError):
            ar.requested_ui_locales(bad)


ALLOWED_HINTS = ("BID", "BID:{national_id}", "BIS")


@pytest.mark.parametrize(
    ("value", "national"), [("BID", False), ("BIS", False), ("BID:01017012345", True), ("BID:010170-123A", True)]
)
def test_a_login_hint_must_be_one_of_the_allowed_forms(value: str, national: bool) -> None:
    assert ar.requested_login_hint(value, ALLOWED_HINTS) == ar.LoginHint(value=value, carries_national_id=national)


@pytest.mark.parametrize(
    "value",
    ["", "bid", "BIM", "BID:", "BID:0101701234567890", "BID:abc", "BID:01017012345 ", "XBID", "BID:01017012345\n"],
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(BadRequestError) as raised:
        ar.requested_login_hint(value, ALLOWED_HINTS)
    assert raised.value.reason == "login_hint_not_allowed"


def test_no_login_hint_is_accepted_where_none_is_configured() -> None:
    with pytest.raises(BadRequestError):
        ar.requested_login_hint("BID", ())


def test_userinfo_must_be_about_the_id_tokens_subject() -> None:
    oidc.validate_userinfo({"sub": "a", "nnin": "1"}, issuer="https://op", client_id="gw", subject="a")
    cases = [
        ({"sub": "b"}, "userinfo_sub_mismatch"),
        ({"nnin": "1"}, "userinfo_sub_mismatch"),
        ({"sub": 1}, "userinfo_sub_mismatch"),
        ({"sub": "a", "iss": "https://evil"}, "userinfo_issuer"),
        ({"sub": "a", "aud": "other"}, "userinfo_audience"),
        ({"sub": "a", "aud": ["other"]}, "userinfo_audience"),
        ({"sub": "a", "aud": 5}, "userinfo_audience"),
    ]
    for claims, reason in cases:
        with pytest.raises(TokenValidationError) as raised:
            oidc.validate_userinfo(claims, issuer="https://op", client_id="gw", subject="a")
        assert raised.value.reason == reason, claims
    with pytest.raises(TokenValidationError):
        oidc.validate_userinfo(["sub", "a"], issuer="https://op", client_id="gw", subject="a")


def test_userinfo_adds_claims_but_never_the_authentication_event_and_never_a_second_value() -> None:
    id_token = {"sub": "a", "acr": "urn:bankid:bid;LOA=4", "name": "Kari"}
    merged = oidc.merge_userinfo(id_token, {"sub": "a", "nnin": "01017012345", "acr": "weak", "name": "Kari"})
    assert merged == {"sub": "a", "acr": "urn:bankid:bid;LOA=4", "name": "Kari", "nnin": "01017012345"}
    with pytest.raises(TokenValidationError) as raised:
        oidc.merge_userinfo(id_token, {"sub": "a", "name": "Ola"})
    assert raised.value.reason == "userinfo_conflict"
