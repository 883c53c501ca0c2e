"""OIDC code flow, pure layer: discovery (T25), PKCE (T24, RFC 7636), authorization URL, callback
parsing (RFC 9207, T25, T27), token request and client authentication (RFC 6749 section 2.3.1, RFC 7523),
token response parsing, and the ID token claim matrix (T28)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from gateway import keys
from gateway.errors import CallbackError, IdpUnavailableError, TokenValidationError
from gateway.protocol import jws, oidc
from gateway.protocol.oidc import ProviderMetadata, TokenSet

ISS = "https://idp.test"
CLIENT_ID = "gw"
REDIRECT_URI = "https://app.example.test/_auth/callback/bankid-no"
META = ProviderMetadata(
    issuer=ISS,
    authorization_endpoint=f"{ISS}/authorize",
    token_endpoint=f"{ISS}/token",
    jwks_uri=f"{ISS}/jwks",
)
META_ISS = ProviderMetadata(
    issuer=ISS,
    authorization_endpoint=f"{ISS}/authorize",
    token_endpoint=f"{ISS}/token",
    jwks_uri=f"{ISS}/jwks",
    iss_parameter_supported=True,
)
DISCOVERY = {
    "issuer": ISS,
    "authorization_endpoint": f"{ISS}/authorize",
    "token_endpoint": f"{ISS}/token",
    "jwks_uri": f"{ISS}/jwks",
    "userinfo_endpoint": f"{ISS}/userinfo",
    "end_session_endpoint": f"{ISS}/logout",
    "authorization_response_iss_parameter_supported": True,
    "code_challenge_methods_supported": ["plain"],
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- discovery ---------------------------------------------------------------------------------------


def test_parse_provider_metadata() -> None:
    assert oidc.parse_provider_metadata(DISCOVERY, expected_issuer=ISS) == ProviderMetadata(
        issuer=ISS,
        authorization_endpoint=f"{ISS}/authorize",
        token_endpoint=f"{ISS}/token",
        jwks_uri=f"{ISS}/jwks",
        userinfo_endpoint=f"{ISS}/userinfo",
        end_session_endpoint=f"{ISS}/logout",
        iss_parameter_supported=True,
    )


@pytest.mark.parametrize(
    "issuer",
    [
        "https://idp.test/",
        "http://idp.test",
        "https://idp.test.evil",
        "https://idp.te",
        "https://IDP.test",
        "HTTPS://idp.test",
        "https://idp.test:443",
        " https://idp.test",
        "https://idp.test/realms/x",
        None,
        ["https://idp.test"],
    ],
)
def test_discovery_issuer_must_match_exactly(issuer: Any) -> None:
    with pytest.raises(IdpUnavailableError) as info:
        oidc.parse_provider_metadata({**DISCOVERY, "issuer": issuer}, expected_issuer=ISS)
    assert info.value.reason == "discovery_issuer_mismatch"


def test_discovery_without_issuer() -> None:
    document = {k: v for k, v in DISCOVERY.items() if k != "issuer"}
    with pytest.raises(IdpUnavailableError) as info:
        oidc.parse_provider_metadata(document, expected_issuer=ISS)
    assert info.value.reason == "discovery_issuer_mismatch"


@pytest.mark.parametrize("document", [None, [], "text", 42])
def test_discovery_not_a_mapping(document: Any) -> None:
    with pytest.raises(IdpUnavailableError) as info:
        oidc.parse_provider_metadata(document, expected_issuer=ISS)
    assert info.value.reason == "discovery_malformed"


ENDPOINTS_OK = [
    "https://idp.test/x",
    "https://other.example/x?realm=a",
    "http://127.0.0.1:8081/x",
    "http://localhost:8081/x",
    "http://[::1]:8081/x",
]
ENDPOINTS_BAD = [
    "http://idp.test/x",
    "http://localhost.evil.test/x",
    "http://127.0.0.2/x",
    "http://10.0.0.1/x",
    "ftp://idp.test/x",
    "https:///x",
    "/relative/x",
    "idp.test/x",
    "javascript:alert(1)",
    "",
    None,
    123,
    ["https://idp.test/x"],
]


@pytest.mark.parametrize("name", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
@pytest.mark.parametrize("url", ENDPOINTS_OK)
def test_required_endpoint_accepted(name: str, url: str) -> None:
    metadata = oidc.parse_provider_metadata({**DISCOVERY, name: url}, expected_issuer=ISS)
    assert getattr(metadata, name) == url


@pytest.mark.parametrize("name", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
@pytest.mark.parametrize("url", ENDPOINTS_BAD)
def test_required_endpoint_refused(name: str, url: Any) -> None:
    with pytest.raises(IdpUnavailableError) as info:
        oidc.parse_provider_metadata({**DISCOVERY, name: url}, expected_issuer=ISS)
    assert info.value.reason == "discovery_malformed"


@pytest.mark.parametrize("name", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
def test_required_endpoint_missing(name: str) -> None:
    document = {k: v for k, v in DISCOVERY.items() if k != name}
    with pytest.raises(IdpUnavailableError):
        oidc.parse_provider_metadata(document, expected_issuer=ISS)


@pytest.mark.parametrize("name", ["userinfo_endpoint", "end_session_endpoint"])
@pytest.mark.parametrize("url", ENDPOINTS_BAD)
def test_optional_endpoint_dropped_when_unusable(name: str, url: Any) -> None:
    metadata = oidc.parse_provider_metadata({**DISCOVERY, name: url}, expected_issuer=ISS)
    assert getattr(metadata, name) is None


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), ("true", False), (1, False), (None, False)]
)
def test_iss_parameter_supported_only_when_true(value: Any, expected: bool) -> None:
    document = {**DISCOVERY, "authorization_response_iss_parameter_supported": value}
    assert oidc.parse_provider_metadata(document, expected_issuer=ISS).iss_parameter_supported is expected


# --- PKCE --------------------------------------------------------------------------------------------

RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_rfc7636_appendix_b(monkeypatch: pytest.MonkeyPatch) -> None:
    requested: list[int] = []

    def fixed(nbytes: int) -> str:
        requested.append(nbytes)
        return RFC7636_VERIFIER

    monkeypatch.setattr(secrets, "token_urlsafe", fixed)
    assert oidc.make_pkce_pair() == (RFC7636_VERIFIER, RFC7636_CHALLENGE)
    assert requested and requested[0] >= 32


def test_pkce_pairs_are_well_formed_and_fresh() -> None:
    pairs = [oidc.make_pkce_pair() for _ in range(200)]
    assert len({v for v, _ in pairs}) == 200
    for verifier, challenge in pairs:
        assert 43 <= len(verifier) <= 128
        assert re.fullmatch(r"[A-Za-z0-9._~-]+", verifier)
        assert challenge == b64(hashlib.sha256(verifier.encode("ascii")).digest())
        assert len(challenge) == 43 and challenge != verifier


# --- authorization URL -------------------------------------------------------------------------------


def auth_url(metadata: ProviderMetadata = META, **kwargs: Any) -> str:
    args: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scopes": ["openid", "profile"],
        "state": "st",
        "nonce": "nc",
        "code_challenge": "ch",
        **kwargs,
    }
    return oidc.build_authorization_url(metadata, **args)


def test_authorization_url_exact() -> None:
    assert auth_url() == (
        "https://idp.test/authorize?response_type=code&client_id=gw"
        "&redirect_uri=https%3A%2F%2Fapp.example.test%2F_auth%2Fcallback%2Fbankid-no"
        "&scope=openid%20profile&state=st&nonce=nc&code_challenge=ch&code_challenge_method=S256"
    )


def test_authorization_url_with_every_option() -> None:
    url = auth_url(
        response_mode="form_post",
        acr_values=["urn:bankid:bid", "urn:bankid:bim"],
        prompt="login",
        login_hint="BID:01010112345",
        ui_locales=["nb", "en"],
    )
    assert url == (
        "https://idp.test/authorize?response_type=code&client_id=gw"
        "&redirect_uri=https%3A%2F%2Fapp.example.test%2F_auth%2Fcallback%2Fbankid-no"
        "&scope=openid%20profile&state=st&nonce=nc&code_challenge=ch&code_challenge_method=S256"
        "&response_mode=form_post&acr_values=urn%3Abankid%3Abid%20urn%3Abankid%3Abim&prompt=login"
        "&login_hint=BID%3A01010112345&ui_locales=nb%20en"
    )


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "a&b=c d+e#f?g/h%20'\"<>\u00e5",
        "https://app.example.test:8443/_auth/callback/x?y=1",
        "\u00e5\u00e4 \U0001f600",
        "",
    ],
)
def test_authorization_url_encodes_exactly_as_urlencode_would(value: str) -> None:
    """The values encoded once and reused must come out byte for byte as urllib's urlencode(quote) encodes them,
    in every field, also the second time the same value is used (from the cache)."""
    options = {
        "client_id": value or "gw",
        "redirect_uri": value or REDIRECT_URI,
        "scopes": ["openid", value],
        "state": value or "st",
        "nonce": value or "nc",
        "code_challenge": value or "ch",
        "response_mode": value or "form_post",
        "acr_values": [value, "urn:bankid:bid"],
        "prompt": value or "login",
        "login_hint": value or "BID",
        "ui_locales": [value, "nb"],
    }
    expected = META.authorization_endpoint + "?" + urlencode(
        {
            "response_type": "code",
            "client_id": options["client_id"],
            "redirect_uri": options["redirect_uri"],
            "scope": " ".join(options["scopes"]),
            "state": options["state"],
            "nonce": options["nonce"],
            "code_challenge": options["code_challenge"],
            "code_challenge_method": "S256",
            "response_mode": options["response_mode"],
            "acr_values": " ".join(options["acr_values"]),
            "prompt": options["prompt"],
            "login_hint": options["login_hint"],
            "ui_locales": " ".join(options["ui_locales"]),
        },
        quote_via=quote,
    )
    assert auth_url(**options) == expected
    assert auth_url(**options) == expected


def test_authorization_url_keeps_the_endpoint_query() -> None:
    metadata = ProviderMetadata(
        issuer=ISS,
        authorization_endpoint="https://idp.test/precheck/auth?realm=current&x=1",
        token_endpoint=f"{ISS}/token",
        jwks_uri=f"{ISS}/jwks",
    )
    url = auth_url(metadata)
    assert url.startswith("https://idp.test/precheck/auth?realm=current&x=1&response_type=code&")
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert query["realm"] == ["current"] and query["x"] == ["1"]
    assert query["code_challenge_method"] == ["S256"]


def test_authorization_url_encodes_every_value() -> None:
    hostile = "a&b=c d+e#f?g/h%20'\"<>\u00e5"
    url = auth_url(state=hostile, nonce=hostile, login_hint=hostile, scopes=["openid", "x&y=z"])
    parts = urlsplit(url)
    assert parts.fragment == ""
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    assert query["state"] == [hostile]
    assert query["nonce"] == [hostile]
    assert query["login_hint"] == [hostile]
    assert query["scope"] == ["openid x&y=z"]
    assert set(query) == {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "login_hint",
    }
    assert "+" not in parts.query  # spaces are %20, so '+' in a value can never become a space


def test_authorization_url_always_s256_and_code() -> None:
    options: list[dict[str, Any]] = [{}, {"response_mode": "form_post"}, {"prompt": "none"}]
    for kwargs in options:
        query = parse_qs(urlsplit(auth_url(**kwargs)).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["response_type"] == ["code"]
        assert "plain" not in auth_url(**kwargs)


def test_authorization_url_leaves_out_empty_options() -> None:
    query = parse_qs(urlsplit(auth_url(acr_values=[], prompt=None, login_hint="", ui_locales=[])).query)
    assert not {"acr_values", "prompt", "login_hint", "ui_locales", "response_mode"} & set(query)


# --- state and callback ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "expected", "match"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ("abc", "abcd", False),
        ("", "abc", False),
        ("", "", True),
        ("åäö", "åäö", True),
        ("åäö", "aao", False),
    ],
)
def test_states_match(received: str, expected: str, match: bool) -> None:
    assert oidc.states_match(received, expected) is match


@pytest.mark.parametrize(
    ("metadata", "params", "expected"),
    [
        (META, {"code": "c1", "state": "s"}, "c1"),
        (META, {"code": "c1", "state": "s", "iss": ISS}, "c1"),
        (META_ISS, {"code": "c1", "state": "s", "iss": ISS}, "c1"),
        (META, {"code": "x" * 2048}, "x" * 2048),
    ],
)
def test_parse_callback_returns_the_code(metadata: ProviderMetadata, params: dict[str, str], expected: str) -> None:
    assert oidc.parse_callback(params, metadata=metadata) == expected


@pytest.mark.parametrize(
    ("metadata", "params", "reason"),
    [
        # RFC 9207: advertised -> required and exact; present -> exact.
        (META_ISS, {"code": "c1", "state": "s"}, "issuer_mismatch"),
        (META_ISS, {"code": "c1", "iss": "https://evil-idp.test"}, "issuer_mismatch"),
        (META, {"code": "c1", "iss": "https://evil-idp.test"}, "issuer_mismatch"),
        (META, {"code": "c1", "iss": "https://idp.test/"}, "issuer_mismatch"),
        (META, {"code": "c1", "iss": "http://idp.test"}, "issuer_mismatch"),
        (META, {"code": "c1", "iss": "https://idp.test.evil"}, "issuer_mismatch"),
        (META, {"code": "c1", "iss": ""}, "issuer_mismatch"),
        (META_ISS, {"error": "access_denied"}, "issuer_mismatch"),
        (META, {"error": "access_denied", "iss": "https://evil-idp.test"}, "issuer_mismatch"),
        # Error codes are mapped to a bounded set (metric labels never carry input).
        (META, {"error": "access_denied", "error_description": "<script>alert(1)</script>"}, "access_denied"),
        (META, {"error": "login_required"}, "login_required"),
        (META, {"error": "temporarily_unavailable"}, "temporarily_unavailable"),
        (META, {"error": "server_error", "code": "c1"}, "server_error"),
        (META, {"error": "<script>alert(1)</script>"}, "idp_error"),
        (META, {"error": "access_denied\r\nx"}, "idp_error"),
        (META, {"error": "ACCESS_DENIED"}, "idp_error"),
        (META, {"error": ""}, "idp_error"),
        (META, {"error": "x" * 10000, "error_uri": "https://evil.example"}, "idp_error"),
        (META_ISS, {"error": "access_denied", "iss": ISS}, "access_denied"),
        # No code.
        (META, {}, "missing_code"),
        (META, {"state": "s"}, "missing_code"),
        (META, {"code": ""}, "missing_code"),
        (META, {"code": "x" * 2049}, "missing_code"),
    ],
)
def test_parse_callback_refusals(metadata: ProviderMetadata, params: dict[str, str], reason: str) -> None:
    with pytest.raises(CallbackError) as info:
        oidc.parse_callback(params, metadata=metadata)
    assert info.value.reason == reason


def test_known_idp_errors_are_a_small_fixed_set() -> None:
    assert {
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "login_required",
        "consent_required",
        "interaction_required",
    } == oidc.KNOWN_IDP_ERRORS


# --- token request -----------------------------------------------------------------------------------

FORM = {
    "grant_type": "authorization_code",
    "code": "c1",
    "redirect_uri": REDIRECT_URI,
    "code_verifier": RFC7636_VERIFIER,
}


def token_request(**kwargs: Any) -> tuple[dict[str, str], dict[str, str]]:
    args: dict[str, Any] = {"code": "c1", "redirect_uri": REDIRECT_URI, "code_verifier": RFC7636_VERIFIER, **kwargs}
    return oidc.build_token_request(**args)


@pytest.mark.parametrize(
    ("client_id", "secret", "userpass"),
    [
        ("gw", "s3cret", "gw:s3cret"),
        ("gw", "a:b c", "gw:a%3Ab%20c"),
        ("my:client id", "p@ss/w+rd=&%", "my%3Aclient%20id:p%40ss%2Fw%2Brd%3D%26%25"),
        ("gw", "blåbær", "gw:bl%C3%A5b%C3%A6r"),
    ],
)
def test_client_secret_basic_form_urlencodes_before_base64(client_id: str, secret: str, userpass: str) -> None:
    headers, form = token_request(client_id=client_id, client_auth="client_secret_basic", client_secret=secret)
    assert headers == {
        "Accept": "application/json",
        "Authorization": "Basic " + base64.b64encode(userpass.encode("ascii")).decode(),
    }
    assert form == FORM


def test_client_secret_basic_rfc_example_value() -> None:
    headers, _ = token_request(client_id="gw", client_auth="client_secret_basic", client_secret="a:b c")
    assert base64.b64decode(headers["Authorization"].removeprefix("Basic ")) == b"gw:a%3Ab%20c"


def test_client_secret_post() -> None:
    headers, form = token_request(client_id="gw", client_auth="client_secret_post", client_secret="a:b c")
    assert headers == {"Accept": "application/json"}
    assert form == {**FORM, "client_id": "gw", "client_secret": "a:b c"}


def test_private_key_jwt() -> None:
    headers, form = token_request(client_id="gw", client_auth="private_key_jwt", client_assertion="eyJ.a.b")
    assert headers == {"Accept": "application/json"}
    assert form == {
        **FORM,
        "client_id": "gw",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": "eyJ.a.b",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_id": "gw", "client_auth": "private_key_jwt"},
        {"client_id": "gw", "client_auth": "private_key_jwt", "client_assertion": ""},
        {"client_id": "gw", "client_auth": "client_secret_jwt", "client_secret": "x"},
        {"client_id": "gw", "client_auth": "none"},
        {"client_id": "gw", "client_auth": ""},
    ],
)
def test_token_request_refusals(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        token_request(**kwargs)


# --- client assertion (RFC 7523) ---------------------------------------------------------------------

CLIENT_KEY = keys.signing_key_from_pem(keys.generate_ec_pem(), kid="client-key-1")


def test_client_assertion_claims() -> None:
    now = time.time()
    token = oidc.build_client_assertion(client_id="gw", audience=ISS, key=CLIENT_KEY, now=now)
    assert jws.read_header(token) == {"alg": "ES256", "kid": "client-key-1", "typ": "JWT"}
    claims = jws.verify(token, [CLIENT_KEY.public], algorithms=["ES256"])
    assert set(claims) == {"iss", "sub", "aud", "jti", "iat", "exp"}
    assert claims["iss"] == claims["sub"] == "gw"
    assert claims["aud"] == ISS
    assert claims["iat"] == int(now)
    assert claims["exp"] - claims["iat"] == 60
    assert uuid.UUID(claims["jti"]).version == 4


def test_client_assertion_jti_is_fresh_each_time() -> None:
    jtis = {
        jws.unverified_claims(oidc.build_client_assertion(client_id="gw", audience=ISS, key=CLIENT_KEY, now=1000.0))[
            "jti"
        ]
        for _ in range(50)
    }
    assert len(jtis) == 50


def test_client_assertion_rsa_and_custom_ttl() -> None:
    rsa_key = keys.signing_key_from_pem(keys.generate_rsa_pem(), kid="rsa-1")
    token = oidc.build_client_assertion(
        client_id="client", audience=f"{ISS}/token", key=rsa_key, now=1_700_000_000.9, ttl=30
    )
    claims = jws.verify(token, [rsa_key.public], algorithms=["RS256"])
    assert (claims["aud"], claims["iat"], claims["exp"]) == (f"{ISS}/token", 1_700_000_000, 1_700_000_030)


# --- token response ----------------------------------------------------------------------------------


def test_parse_token_response() -> None:
    document = {
        "id_token": "eyJ.a.b",
        "access_token": "at",
        "refresh_token": "rt",
        "expires_in": 300,
        "token_type": "Bearer",
    }
    assert oidc.parse_token_response(200, document) == TokenSet(
        id_token="eyJ.a.b", access_token="at", refresh_token="rt", expires_in=300
    )


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER", "DPoP", "dpop", None])
def test_token_type_accepted(token_type: str | None) -> None:
    document = {"id_token": "eyJ.a.b"} if token_type is None else {"id_token": "eyJ.a.b", "token_type": token_type}
    assert oidc.parse_token_response(200, document).id_token == "eyJ.a.b"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"access_token": 5, "refresh_token": ["x"], "expires_in": "300"}, TokenSet("eyJ.a.b", None, None, None)),
        ({"expires_in": True}, TokenSet("eyJ.a.b", None, None, None)),
        ({"expires_in": 3.5}, TokenSet("eyJ.a.b", None, None, None)),
        ({}, TokenSet("eyJ.a.b", None, None, None)),
    ],
)
def test_token_response_odd_optional_fields_are_dropped(extra: dict[str, Any], expected: TokenSet) -> None:
    assert oidc.parse_token_response(200, {"id_token": "eyJ.a.b", **extra}) == expected


@pytest.mark.parametrize(
    ("status", "document", "error", "reason"),
    [
        (400, {"error": "invalid_grant"}, TokenValidationError, "invalid_grant"),
        (401, {"error": "invalid_client"}, TokenValidationError, "invalid_client"),
        (400, {"error": "invalid_request"}, TokenValidationError, "invalid_request"),
        (400, {"error": "unauthorized_client"}, TokenValidationError, "unauthorized_client"),
        (400, {"error": "<script>"}, TokenValidationError, "token_error"),
        (400, {"error": ["invalid_grant"]}, TokenValidationError, "token_error"),
        (400, "not json", TokenValidationError, "token_error"),
        (302, {"id_token": "eyJ.a.b"}, TokenValidationError, "token_error"),
        (201, {"id_token": "eyJ.a.b"}, TokenValidationError, "token_error"),
        (500, {"error": "invalid_grant"}, IdpUnavailableError, "token_endpoint_error"),
        (503, None, IdpUnavailableError, "token_endpoint_error"),
        (200, None, TokenValidationError, "token_error"),
        (200, ["id_token"], TokenValidationError, "token_error"),
        (200, {}, TokenValidationError, "missing_id_token"),
        (200, {"access_token": "at"}, TokenValidationError, "missing_id_token"),
        (200, {"id_token": ""}, TokenValidationError, "missing_id_token"),
        (200, {"id_token": None}, TokenValidationError, "missing_id_token"),
        (200, {"id_token": 5}, TokenValidationError, "missing_id_token"),
        (200, {"id_token": "eyJ.a.b", "token_type": "mac"}, TokenValidationError, "token_type"),
        (200, {"id_token": "eyJ.a.b", "token_type": "N_A"}, TokenValidationError, "token_type"),
        (200, {"id_token": "eyJ.a.b", "token_type": ""}, TokenValidationError, "token_type"),
        (200, {"id_token": "eyJ.a.b", "token_type": 1}, TokenValidationError, "token_type"),
    ],
)
def test_parse_token_response_refusals(status: int, document: Any, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as info:
        oidc.parse_token_response(status, document)
    assert info.value.reason == reason  # type: ignore[attr-defined]


# --- ID token claims (T25, T28) ----------------------------------------------------------------------

NOW = 1_700_000_000.0
BASE: dict[str, Any] = {
    "iss": ISS,
    "aud": CLIENT_ID,
    "sub": "u1",
    "ssn": "199001011234",
    "iat": int(NOW),
    "exp": int(NOW) + 300,
    "nonce": "n-1",
    "acr": "urn:bankid:bid;LOA=4",
}
_DROP = object()


def change_id(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={'<dropped>' if v is _DROP else repr(v)[:24]}" for k, v in value.items()) or "base"
    return repr(value)[:24] if not isinstance(value, str) else value[:24]


def validate(changes: dict[str, Any], **kwargs: Any) -> None:
    claims = {k: v for k, v in {**BASE, **changes}.items() if v is not _DROP}
    args: dict[str, Any] = {"issuer": ISS, "client_id": CLIENT_ID, "now": NOW, "nonce": "n-1", **kwargs}
    oidc.validate_id_token_claims(claims, **args)


@pytest.mark.parametrize(
    "changes",
    ids=change_id,
    argvalues=[
        {},
        {"aud": [CLIENT_ID]},
        {"aud": [CLIENT_ID, "other"], "azp": CLIENT_ID},
        {"azp": CLIENT_ID},
        {"exp": int(NOW) - 59},  # within the 60 s skew
        {"iat": int(NOW) + 60},
        {"nbf": int(NOW) + 60},
        {"nbf": int(NOW) - 1000},
        {"exp": NOW + 0.5, "iat": NOW - 0.5},  # NumericDate may be fractional
        {"sub": "x" * 255},
    ],
)
def test_valid_claims(changes: dict[str, Any]) -> None:
    validate(changes)


@pytest.mark.parametrize(
    ("changes", "reason"),
    ids=change_id,
    argvalues=[
        # T25: exact issuer comparison.
        ({"iss": "https://idp.test/"}, "issuer"),
        ({"iss": "http://idp.test"}, "issuer"),
        ({"iss": "https://idp.test.evil"}, "issuer"),
        ({"iss": "https://idp.te"}, "issuer"),
        ({"iss": "https://evil-idp.test"}, "issuer"),
        ({"iss": "https://IDP.test"}, "issuer"),
        ({"iss": [ISS]}, "issuer"),
        ({"iss": _DROP}, "issuer"),
        # T28: audience and azp.
        ({"aud": "other"}, "audience"),
        ({"aud": ["other"]}, "audience"),
        ({"aud": []}, "audience"),
        ({"aud": None}, "audience"),
        ({"aud": _DROP}, "audience"),
        ({"aud": 1}, "audience"),
        ({"aud": [CLIENT_ID, 1]}, "audience"),
        ({"aud": {"gw": True}}, "audience"),
        ({"aud": "gw "}, "audience"),
        ({"aud": [CLIENT_ID, "other"]}, "azp"),
        ({"aud": [CLIENT_ID, "other"], "azp": "other"}, "azp"),
        ({"azp": "other"}, "azp"),
        # T28: sub.
        ({"sub": _DROP}, "sub"),
        ({"sub": ""}, "sub"),
        ({"sub": 12345}, "sub"),
        ({"sub": None}, "sub"),
        ({"sub": "x" * 256}, "sub"),
        # T28: times (skew at most 60 s).
        ({"exp": int(NOW) - 120}, "expired"),
        ({"exp": int(NOW) - 60}, "expired"),
        ({"exp": int(NOW) - 61}, "expired"),
        ({"iat": int(NOW) + 3600}, "issued_in_future"),
        ({"iat": int(NOW) + 61}, "issued_in_future"),
        ({"nbf": int(NOW) + 3600}, "not_yet_valid"),
        ({"nbf": int(NOW) + 61}, "not_yet_valid"),
        ({"exp": _DROP}, "missing_exp"),
        ({"exp": None}, "missing_exp"),
        ({"iat": _DROP}, "missing_iat"),
        ({"exp": "9999999999"}, "malformed_exp"),
        ({"exp": True}, "malformed_exp"),
        ({"exp": [int(NOW) + 300]}, "malformed_exp"),
        ({"iat": str(int(NOW))}, "malformed_iat"),
        ({"iat": False}, "malformed_iat"),
        ({"nbf": "0"}, "malformed_nbf"),
        # Non-finite numbers (Python's json accepts NaN/Infinity): an exp that never passes is
        # "accepted forever" (T28).
        ({"exp": float("nan")}, "malformed_exp"),
        ({"exp": float("inf")}, "malformed_exp"),
        ({"iat": float("nan")}, "malformed_iat"),
        ({"nbf": float("nan")}, "malformed_nbf"),
        # T28: nonce.
        ({"nonce": "n-2"}, "nonce"),
        ({"nonce": _DROP}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"nonce": ""}, "nonce"),
        ({"nonce": ["n-1"]}, "nonce"),
        ({"nonce": "n-1 "}, "nonce"),
    ],
)
def test_t28_claim_matrix(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenValidationError) as info:
        validate(changes)
    assert info.value.reason == reason


def test_nonce_reused_from_an_earlier_login_is_refused() -> None:
    """The nonce is per flow: a token minted for login A does not complete login B."""
    with pytest.raises(TokenValidationError) as info:
        validate({"nonce": "n-1"}, nonce="n-2")
    assert info.value.reason == "nonce"


def test_nonce_not_checked_when_the_flow_has_none() -> None:
    validate({"nonce": _DROP}, nonce=None)


@pytest.mark.parametrize(
    ("acr", "acr_values", "require_acr", "ok"),
    [
        ("urn:bankid:bid;LOA=4", ["urn:bankid:bid;LOA=4"], True, True),
        ("urn:bankid:bid;LOA=4", ["urn:bankid:bim;LOA=4", "urn:bankid:bid;LOA=4"], True, True),
        ("urn:bankid:bis;LOA=3", ["urn:bankid:bid;LOA=4"], True, False),
        ("urn:bankid:bid;LOA=4 ", ["urn:bankid:bid;LOA=4"], True, False),
        ("URN:BANKID:BID;LOA=4", ["urn:bankid:bid;LOA=4"], True, False),
        (_DROP, ["urn:bankid:bid;LOA=4"], True, False),
        (["urn:bankid:bid;LOA=4"], ["urn:bankid:bid;LOA=4"], True, False),
        ("urn:bankid:bis;LOA=3", ["urn:bankid:bid;LOA=4"], False, True),
        # Providers refine what was asked with ;-parameters (BankID Norway, issue 16): X;... matches X ...
        ("urn:bankid:bid;LOA=4", ["urn:bankid:bid"], True, True),
        ("urn:bankid:bis;LOA=3", ["urn:bankid:bid", "urn:bankid:bis"], True, True),
        ("urn:bankid:bid;LOA=4;x=y", ["urn:bankid:bid"], True, True),
        # ... and nothing else is lenient.
        ("urn:bankid:bis;LOA=3", ["urn:bankid:bid"], True, False),
        ("urn:bankid:bidx", ["urn:bankid:bid"], True, False),
        ("urn:bankid:bid;", ["urn:bankid:bid"], True, False),
        ("urn:bankid:bid;LOA", ["urn:bankid:bid"], True, False),
        ("urn:bankid:bid;LOA=", ["urn:bankid:bid"], True, False),
        ("urn:bankid:bid;LOA=4 ", ["urn:bankid:bid"], True, False),
        ("urn:bankid:bid;LOA=4;", ["urn:bankid:bid"], True, False),
        ("urn:bankid:bid;LOA=4\n", ["urn:bankid:bid"], True, False),
        ("urn:bankid:bid", ["urn:bankid:bid;LOA=4"], True, False),
        ("urn:bankid:bid ;LOA=4", ["urn:bankid:bid"], True, False),
        (_DROP, [], True, True),
        ("anything", [], True, True),
    ],
)
def test_acr_must_be_one_of_the_requested_values(acr: Any, acr_values: list[str], require_acr: bool, ok: bool) -> None:
    if ok:
        validate({"acr": acr}, acr_values=acr_values, require_acr=require_acr)
    else:
        with pytest.raises(TokenValidationError) as info:
            validate({"acr": acr}, acr_values=acr_values, require_acr=require_acr)
        assert info.value.reason == "acr"


@pytest.mark.parametrize(
    ("auth_time", "reason"),
    [
        (int(NOW) - 300, None),
        (int(NOW) - 360, None),  # max_age 300 + 60 s skew
        (int(NOW) - 361, "auth_time"),
        (_DROP, "missing_auth_time"),
        ("1700000000", "malformed_auth_time"),
    ],
)
def test_max_age_needs_a_recent_auth_time(auth_time: Any, reason: str | None) -> None:
    if reason is None:
        validate({"auth_time": auth_time}, max_age=300)
    else:
        with pytest.raises(TokenValidationError) as info:
            validate({"auth_time": auth_time}, max_age=300)
        assert info.value.reason == reason


def test_clock_skew_is_sixty_seconds() -> None:
    assert oidc.CLOCK_SKEW == 60.0
