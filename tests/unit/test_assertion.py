"""What the upstream receives: protected header names (T10), encoded identity headers (T12, T13),
and the signed assertion with its per-session reuse."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from gateway import keys
from gateway.assertion import (
    ROUTING_HEADERS,
    AssertionSigner,
    identity_header_values,
    normalize_header_name,
    protected_names,
)
from gateway.protocol import jws
from gateway.protocol.claims import Identity

KEY = keys.signing_key_from_pem(keys.generate_ec_pem(), kid="assert-1")
IDENTITY = Identity(
    values={
        "sub": "u1",
        "idp": "bankid-se",
        "ssn": "196802020575",
        "name": "Åsa Öberg-Ñúñez 李",
        "country": "SE",
    }
)
OTHER = Identity(values={"sub": "u2", "idp": "bankid-se", "name": "Bo"})
HEADERS = {"ssn": "X-Auth-Ssn", "name": "X-Auth-Name", "country": "X-Auth-Country", "birthdate": "X-Auth-Birthdate"}
T0 = 1_700_000_000.0


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- protected names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        ("X_Auth_Ssn", "x-auth-ssn"),
        ("x-auth-ssn", "x-auth-ssn"),
        ("X-AUTH-SSN", "x-auth-ssn"),
        ("x_auth-SSN", "x-auth-ssn"),
        ("X-Auth-Assertion", "x-auth-assertion"),
    ],
)
def test_normalize_header_name(name: str, normalised: str) -> None:
    assert normalize_header_name(name) == normalised


def test_protected_names_normalise_and_include_routing_headers() -> None:
    names = protected_names(["X_Auth_Ssn", "X-Auth-NAME", "x-auth-country"], "X-Auth-Assertion")
    assert names == {"x-auth-ssn", "x-auth-name", "x-auth-country", "x-auth-assertion"} | ROUTING_HEADERS
    for spelling in ("X_Auth_Ssn", "x-auth-ssn", "X-AUTH-SSN", "x_auth_ssn", "X-Auth_Ssn"):
        assert normalize_header_name(spelling) in names


@pytest.mark.parametrize(
    "name",
    [
        "Forwarded",
        "X-Forwarded-For",
        "X_Forwarded_For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Forwarded-Prefix",
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-Real-IP",
        "X-HTTP-Method-Override",
    ],
)
def test_routing_headers_are_protected_in_any_spelling(name: str) -> None:
    assert normalize_header_name(name) in protected_names([], "X-Auth-Assertion")


def test_ordinary_headers_are_not_protected() -> None:
    names = protected_names(["X-Auth-Ssn"], "X-Auth-Assertion")
    assert not {"accept", "cookie", "authorization", "x-auth", "x-auth-ssn2"} & names


# --- identity header values --------------------------------------------------------------------------


def test_identity_header_values_rfc8187() -> None:
    assert identity_header_values(IDENTITY, HEADERS, "rfc8187") == (
        ("X-Auth-Ssn", "196802020575"),
        ("X-Auth-Name", "UTF-8''%C3%85sa%20%C3%96berg-%C3%91%C3%BA%C3%B1ez%20%E6%9D%8E"),
        ("X-Auth-Country", "SE"),
    )


def test_identity_header_values_base64url() -> None:
    values = dict(identity_header_values(IDENTITY, HEADERS, "base64url"))
    assert set(values) == {"X-Auth-Ssn", "X-Auth-Name", "X-Auth-Country"}
    assert unb64(values["X-Auth-Name"]).decode("utf-8") == "Åsa Öberg-Ñúñez 李"
    assert values["X-Auth-Country"] == "U0U"


def test_identity_header_values_are_printable_ascii() -> None:
    for encoding in ("rfc8187", "base64url"):
        for _, value in identity_header_values(IDENTITY, HEADERS, encoding):
            assert value.isascii() and value.isprintable()


def test_identity_header_values_follow_the_mapping_order_and_skip_absent_claims() -> None:
    headers = {"country": "C", "birthdate": "B", "ssn": "S"}
    assert identity_header_values(IDENTITY, headers, "rfc8187") == (("C", "SE"), ("S", "196802020575"))
    assert identity_header_values(IDENTITY, {}, "rfc8187") == ()


# --- the signed assertion ----------------------------------------------------------------------------


def signer(ttl: float = 60, cache_size: int = 10000) -> AssertionSigner:
    return AssertionSigner(
        key=KEY, issuer="https://app.example.test", audience="upstream", ttl=ttl, cache_size=cache_size
    )


def test_assertion_claims() -> None:
    token = signer().assertion_for("sid-1", IDENTITY, now=T0 + 0.7)
    assert jws.read_header(token) == {"alg": "ES256", "kid": "assert-1", "typ": "JWT"}
    claims = jws.verify(token, [KEY.public], algorithms=["ES256"])
    jti = claims.pop("jti")
    assert uuid.UUID(jti).version == 4
    assert claims == {
        "iss": "https://app.example.test",
        "aud": "upstream",
        "sub": "u1",
        "iat": int(T0),
        "nbf": int(T0),
        "exp": int(T0) + 60,
        "idp": "bankid-se",
        "ssn": "196802020575",
        "name": "Åsa Öberg-Ñúñez 李",
        "country": "SE",
    }


def test_assertion_names_are_exact_utf8() -> None:
    token = signer().assertion_for("sid-1", IDENTITY, now=T0)
    payload = unb64(token.split(".")[1])
    assert "Åsa Öberg-Ñúñez 李".encode() in payload
    assert b"\\u" not in payload
    assert json.loads(payload.decode("utf-8"))["name"] == "Åsa Öberg-Ñúñez 李"


@pytest.mark.parametrize(
    ("elapsed", "reused"), [(0, True), (10, True), (29, True), (29.9, True), (30, False), (59, False), (61, False)]
)
def test_assertion_reused_within_half_its_ttl(elapsed: float, reused: bool) -> None:
    s = signer(ttl=60)
    first = s.assertion_for("sid-1", IDENTITY, now=T0)
    again = s.assertion_for("sid-1", IDENTITY, now=T0 + elapsed)
    assert (again == first) is reused
    if not reused:
        claims = jws.verify(again, [KEY.public], algorithms=["ES256"])
        assert claims["iat"] == int(T0 + elapsed)
        assert claims["exp"] == int(T0 + elapsed) + 60


def test_reused_assertion_keeps_its_original_exp() -> None:
    s = signer(ttl=60)
    first = s.assertion_for("sid-1", IDENTITY, now=T0)
    again = s.assertion_for("sid-1", IDENTITY, now=T0 + 20)
    assert again == first
    assert jws.unverified_claims(again)["exp"] == int(T0) + 60


def test_assertion_never_shared_between_sessions() -> None:
    s = signer()
    a = s.assertion_for("sid-1", IDENTITY, now=T0)
    b = s.assertion_for("sid-2", IDENTITY, now=T0)
    c = s.assertion_for("sid-3", OTHER, now=T0)
    assert len({a, b, c}) == 3
    jtis = {jws.unverified_claims(t)["jti"] for t in (a, b, c)}
    assert len(jtis) == 3
    assert jws.unverified_claims(c)["sub"] == "u2"
    assert s.assertion_for("sid-1", IDENTITY, now=T0 + 1) == a
    assert s.assertion_for("sid-3", OTHER, now=T0 + 1) == c


def test_re_signed_after_half_ttl_gets_a_new_jti() -> None:
    s = signer(ttl=60)
    first = s.assertion_for("sid-1", IDENTITY, now=T0)
    second = s.assertion_for("sid-1", IDENTITY, now=T0 + 31)
    assert jws.unverified_claims(first)["jti"] != jws.unverified_claims(second)["jti"]
    assert s.assertion_for("sid-1", IDENTITY, now=T0 + 40) == second


def test_forget_drops_the_cached_assertion() -> None:
    s = signer()
    first = s.assertion_for("sid-1", IDENTITY, now=T0)
    s.forget("sid-1")
    s.forget("never-seen")
    assert s.assertion_for("sid-1", IDENTITY, now=T0) != first


def test_cache_is_bounded_and_evicts_the_least_recent() -> None:
    s = signer(cache_size=2)
    a = s.assertion_for("a", IDENTITY, now=T0)
    b = s.assertion_for("b", IDENTITY, now=T0)
    s.assertion_for("c", IDENTITY, now=T0)  # evicts "a"
    assert s.assertion_for("b", IDENTITY, now=T0) == b
    assert s.assertion_for("a", IDENTITY, now=T0) != a


def test_assertion_ttl_is_an_integer_number_of_seconds() -> None:
    claims = jws.unverified_claims(signer(ttl=90).assertion_for("sid-1", IDENTITY, now=T0 + 0.999))
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (int(T0), int(T0), int(T0) + 90)
