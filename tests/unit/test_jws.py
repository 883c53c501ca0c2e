"""The JOSE module: attacks.md T29 (alg none), T30 (HMAC confusion), T31 (header-driven keys),
T33 (malformed signatures), T34 (size caps, JWE, zip), plus JWKS parsing and sign/verify round trips.

Tokens are forged here with hashlib/hmac/cryptography only (never python-jose), so a bug in the
library cannot hide a bug in the module.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import secrets
import socket
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from gateway import keys
from gateway.protocol import jws
from gateway.protocol.jws import JoseError, PublicKey

EC_PEM = keys.generate_ec_pem()
RSA_PEM = keys.generate_rsa_pem()
P384_PEM = ec.generate_private_key(ec.SECP384R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
ATTACKER_PEM = keys.generate_ec_pem()

EC_KEY = keys.signing_key_from_pem(EC_PEM, kid="idp-ec")
RSA_KEY = keys.signing_key_from_pem(RSA_PEM, kid="idp-rsa")
P384_KEY = keys.signing_key_from_pem(P384_PEM, kid="idp-p384")
IDP_KEYS = (EC_KEY.public, RSA_KEY.public)
ALGS = ("RS256", "ES256")

NOW = int(time.time())
CLAIMS = {"iss": "https://idp.test", "aud": "gw", "sub": "u1", "iat": NOW, "exp": NOW + 300, "nonce": "n-1"}
_HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def seg(value: Any) -> str:
    return b64(json.dumps(value).encode())


def forge(header: dict[str, Any], claims: Any = CLAIMS, signature: bytes = b"") -> str:
    return f"{seg(header)}.{seg(claims)}.{b64(signature)}"


def private(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


def raw_sign(pem: bytes, header: dict[str, Any], payload: bytes, *, der: bool = False, bits: str = "") -> str:
    """Sign header.payload with cryptography directly (R||S for ECDSA, PKCS#1 v1.5 for RSA)."""
    key = private(pem)
    signing_input = f"{seg(header)}.{b64(payload)}".encode()
    digest = _HASHES[bits or header["alg"][2:]]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(signing_input, ec.ECDSA(digest))
        if not der:
            r, s = decode_dss_signature(signature)
            size = (key.curve.key_size + 7) // 8
            signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(signing_input, padding.PKCS1v15(), digest)
    return f"{signing_input.decode()}.{b64(signature)}"


def refusal(token: Any, key_set: Any = IDP_KEYS, algorithms: Any = ALGS, **kwargs: Any) -> str:
    with pytest.raises(JoseError) as info:
        jws.verify(token, key_set, algorithms=algorithms, **kwargs)
    return info.value.reason


def with_segment(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


def flip_bit(segment: str, byte: int) -> str:
    raw = bytearray(unb64(segment))
    raw[byte] ^= 0x01
    return b64(bytes(raw))


@pytest.fixture
def no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if python-jose is asked to verify: the refusal must happen before the library."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("python-jose was reached")

    monkeypatch.setattr("gateway.protocol.jws.jose_jws.verify", boom)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """T31: jku/x5u must never be fetched; any connection attempt fails the test."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "getaddrinfo", boom)
    monkeypatch.setattr(socket, "create_connection", boom)
    monkeypatch.setattr(socket.socket, "connect", boom)


# --- controls: the forging helpers produce tokens the module accepts -------------------------------


@pytest.mark.parametrize(
    ("pem", "header"),
    [
        (EC_PEM, {"alg": "ES256", "kid": "idp-ec"}),
        (EC_PEM, {"alg": "ES256"}),
        (RSA_PEM, {"alg": "RS256", "kid": "idp-rsa"}),
        (RSA_PEM, {"alg": "RS256", "typ": "JWT"}),
    ],
)
def test_hand_signed_token_verifies(pem: bytes, header: dict[str, Any]) -> None:
    token = raw_sign(pem, header, json.dumps(CLAIMS).encode())
    assert jws.verify(token, IDP_KEYS, algorithms=ALGS) == CLAIMS


@pytest.mark.parametrize("key", [EC_KEY, RSA_KEY, P384_KEY], ids=["ES256", "RS256", "ES384"])
def test_sign_verify_round_trip(key: jws.SigningKey) -> None:
    claims = {**CLAIMS, "name": "Åsa Öberg"}
    token = jws.sign(claims, key)
    assert jws.read_header(token) == {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    assert jws.verify(token, [EC_KEY.public, RSA_KEY.public, P384_KEY.public], algorithms=[key.alg]) == claims
    # Names are sent as UTF-8, not \u escapes.
    assert "Åsa Öberg".encode() in unb64(token.split(".")[1])


def test_sign_uses_the_given_typ() -> None:
    assert jws.read_header(jws.sign(CLAIMS, EC_KEY, typ="at+jwt"))["typ"] == "at+jwt"


def test_verify_without_kid_tries_every_key() -> None:
    token = raw_sign(RSA_PEM, {"alg": "RS256"}, json.dumps(CLAIMS).encode())
    assert jws.verify(token, [EC_KEY.public, P384_KEY.public, RSA_KEY.public], algorithms=ALGS) == CLAIMS


# --- T29: alg none and its spellings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "signature"),
    [
        ({"alg": "none", "typ": "JWT"}, b""),
        ({"alg": "None", "typ": "JWT"}, b""),
        ({"alg": "NONE", "typ": "JWT"}, b""),
        ({"alg": "nOnE", "typ": "JWT"}, b""),
        ({"typ": "JWT"}, b""),
        ({"alg": None}, b""),
        ({"alg": ""}, b""),
        ({"alg": ["ES256"]}, b""),
        ({"alg": "es256", "kid": "idp-ec"}, b""),
        ({"alg": "ES256 ", "kid": "idp-ec"}, b""),
        ({"alg": "none", "kid": "idp-ec"}, b"\x00" * 64),
        ({"alg": "none"}, hashlib.sha256(b"anything").digest()),
    ],
)
def test_t29_alg_none_and_missing_alg_refused(header: dict[str, Any], signature: bytes, no_library: None) -> None:
    assert refusal(forge(header, signature=signature)) == "algorithm_not_allowed"


def test_t29_none_refused_even_with_a_real_signature() -> None:
    """alg none, but the signature segment is a valid ES256 signature over the same input."""
    real = raw_sign(EC_PEM, {"alg": "none", "kid": "idp-ec"}, json.dumps(CLAIMS).encode(), bits="256")
    assert refusal(real) == "algorithm_not_allowed"


def test_t29_none_refused_even_if_the_caller_allows_it(no_library: None) -> None:
    assert refusal(forge({"alg": "none"}), algorithms=[*ALGS, "none"]) == "algorithm_not_allowed"


def test_t29_unverified_claims_refuses_none_too() -> None:
    with pytest.raises(JoseError) as info:
        jws.unverified_claims(forge({"alg": "none"}))
    assert info.value.reason == "algorithm_not_allowed"


# --- T30: HMAC with the provider's public key as the secret ------------------------------------------


def _public_materials() -> dict[str, tuple[bytes, str]]:
    out: dict[str, tuple[bytes, str]] = {}
    for name, pem, kid in (("ec", EC_PEM, "idp-ec"), ("rsa", RSA_PEM, "idp-rsa")):
        public = private(pem).public_key()
        out[f"{name}-pem"] = (
            public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            kid,
        )
        out[f"{name}-der"] = (
            public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
            kid,
        )
        out[f"{name}-openssh"] = (
            public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
            kid,
        )
        out[f"{name}-pkcs1-pem"] = (
            public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
            if name == "rsa"
            else public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint),
            kid,
        )
    out["rsa-jwk-n"] = (RSA_KEY.public.jwk["n"].encode(), "idp-rsa")
    out["ec-jwk-x"] = (EC_KEY.public.jwk["x"].encode(), "idp-ec")
    out["ec-jwk-json"] = (json.dumps(dict(EC_KEY.public.jwk)).encode(), "idp-ec")
    return out


PUBLIC_MATERIALS = _public_materials()
_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def hmac_forge(alg: str, secret: bytes, kid: str) -> str:
    signing_input = f"{seg({'alg': alg, 'kid': kid, 'typ': 'JWT'})}.{seg(CLAIMS)}"
    mac = hmac.new(secret, signing_input.encode(), _HMAC[alg]).digest()
    return f"{signing_input}.{b64(mac)}"


def test_t30_openssh_material_is_the_string_the_attack_names() -> None:
    assert PUBLIC_MATERIALS["ec-openssh"][0].startswith(b"ecdsa-sha2-nistp256 ")
    assert PUBLIC_MATERIALS["rsa-openssh"][0].startswith(b"ssh-rsa ")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("material", sorted(PUBLIC_MATERIALS))
def test_t30_hmac_with_public_key_refused(alg: str, material: str, no_library: None) -> None:
    secret, kid = PUBLIC_MATERIALS[material]
    token = hmac_forge(alg, secret, kid)
    assert refusal(token) == "algorithm_not_allowed"
    # A caller that wrongly lists the HMAC algorithm still cannot enable it.
    assert refusal(token, algorithms=[*ALGS, alg]) == "algorithm_not_allowed"


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": b64(b"secret-secret-secret-secret-1234")},
        {"kty": "oct", "k": b64(b"k"), "alg": "HS256", "use": "sig"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "HS256"},
    ],
)
def test_t30_hmac_keys_cannot_enter_the_key_set(jwk: dict[str, str]) -> None:
    with pytest.raises(JoseError) as info:
        jws.public_key_from_jwk(jwk)
    assert info.value.reason in {"unsupported_key_type", "unsupported_algorithm"}
    assert jws.parse_jwks({"keys": [jwk]}) == ()


# --- T31: kid is only a lookup key; jku, x5u, jwk and x5c are never used ------------------------------


@pytest.mark.parametrize(
    "kid",
    ["../../../../dev/null", "k1' OR '1'='1", "file:///etc/passwd", "%00", secrets.token_urlsafe(24), "x" * 256],
)
def test_t31_unknown_kid(kid: str, no_network: None) -> None:
    attacker = keys.signing_key_from_pem(ATTACKER_PEM, kid=kid)
    assert refusal(jws.sign(CLAIMS, attacker)) == "unknown_kid"


@pytest.mark.parametrize(
    ("kid", "reason"), [("x" * 257, "malformed_kid"), (123, "malformed_kid"), ([], "malformed_kid")]
)
def test_t31_malformed_kid(kid: Any, reason: str) -> None:
    assert refusal(raw_sign(ATTACKER_PEM, {"alg": "ES256", "kid": kid}, b"{}")) == reason


def test_t31_unknown_kid_repeated_stays_unknown() -> None:
    for _ in range(1000):
        token = forge({"alg": "ES256", "kid": secrets.token_hex(8)}, signature=b"\x01" * 64)
        assert refusal(token) == "unknown_kid"


def _self_signed_certificate_b64() -> str:
    key = private(ATTACKER_PEM)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.test")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


ATTACKER_JWK = {k: v for k, v in keys.public_jwk(keys.signing_key_from_pem(ATTACKER_PEM)).items() if k != "kid"}


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "ES256", "jku": "https://canary.test/jwks.json"}, "bad_signature"),
        ({"alg": "ES256", "jku": "https://canary.test/jwks.json", "kid": "idp-ec"}, "bad_signature"),
        ({"alg": "ES256", "x5u": "https://canary.test/c.pem"}, "bad_signature"),
        ({"alg": "ES256", "jwk": ATTACKER_JWK}, "bad_signature"),
        ({"alg": "ES256", "jwk": ATTACKER_JWK, "kid": "idp-ec"}, "bad_signature"),
        ({"alg": "ES256", "jwk": {**ATTACKER_JWK, "kid": "evil"}, "kid": "evil"}, "unknown_kid"),
        ({"alg": "ES256", "x5c": [_self_signed_certificate_b64()]}, "bad_signature"),
        ({"alg": "ES256", "x5c": [_self_signed_certificate_b64()], "kid": "idp-ec"}, "bad_signature"),
    ],
)
def test_t31_header_keys_never_used(header: dict[str, Any], reason: str, no_network: None) -> None:
    token = raw_sign(ATTACKER_PEM, header, json.dumps(CLAIMS).encode())
    assert refusal(token) == reason


def test_t31_attacker_key_with_idp_kid_refused() -> None:
    attacker = keys.signing_key_from_pem(ATTACKER_PEM, kid="idp-ec")
    assert refusal(jws.sign(CLAIMS, attacker)) == "bad_signature"


# --- T33: malformed signatures and encodings ---------------------------------------------------------

ES_TOKEN = jws.sign(CLAIMS, EC_KEY)
RS_TOKEN = jws.sign(CLAIMS, RSA_KEY)


def _der_signature_token() -> str:
    return raw_sign(EC_PEM, {"alg": "ES256", "kid": "idp-ec"}, json.dumps(CLAIMS).encode(), der=True)


def _rs_sig(token: str) -> bytes:
    return unb64(token.split(".")[2])


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(forge({"alg": "ES256", "kid": "idp-ec"}, signature=b"\x00" * 64), id="es256-r-s-zero"),
        pytest.param(forge({"alg": "ES256"}, signature=b"\x00" * 64), id="es256-r-s-zero-no-kid"),
        pytest.param(
            forge({"alg": "ES256", "kid": "idp-ec"}, signature=b"\x00" * 32 + b"\x01" + b"\x00" * 31),
            id="es256-r-zero",
        ),
        pytest.param(_der_signature_token(), id="es256-der-encoded"),
        pytest.param(with_segment(ES_TOKEN, 2, b64(_rs_sig(ES_TOKEN) + b"\x00")), id="es256-65-bytes"),
        pytest.param(with_segment(ES_TOKEN, 2, b64(_rs_sig(ES_TOKEN)[:63])), id="es256-63-bytes"),
        pytest.param(with_segment(ES_TOKEN, 2, b64(_rs_sig(ES_TOKEN)[:32])), id="es256-32-bytes"),
        pytest.param(with_segment(ES_TOKEN, 2, b64(_rs_sig(ES_TOKEN) * 2)), id="es256-128-bytes"),
        pytest.param(with_segment(ES_TOKEN, 2, ""), id="es256-empty"),
        pytest.param(with_segment(RS_TOKEN, 2, ""), id="rs256-empty"),
        pytest.param(forge({"alg": "RS256", "kid": "idp-rsa"}, signature=b"\x00" * 256), id="rs256-zeros"),
        pytest.param(with_segment(ES_TOKEN, 2, flip_bit(ES_TOKEN.split(".")[2], 0)), id="es256-flip-first"),
        pytest.param(with_segment(ES_TOKEN, 2, flip_bit(ES_TOKEN.split(".")[2], 63)), id="es256-flip-last"),
        pytest.param(with_segment(RS_TOKEN, 2, flip_bit(RS_TOKEN.split(".")[2], 100)), id="rs256-flip"),
        pytest.param(with_segment(ES_TOKEN, 1, flip_bit(ES_TOKEN.split(".")[1], 5)), id="payload-flip"),
        pytest.param(with_segment(ES_TOKEN, 1, seg({**CLAIMS, "sub": "u2"})), id="payload-swapped"),
        pytest.param(
            with_segment(ES_TOKEN, 0, seg({"alg": "ES256", "kid": "idp-ec", "typ": "JWT", "x": 1})),
            id="header-changed",
        ),
    ],
)
def test_t33_bad_signature(token: str) -> None:
    assert refusal(token) == "bad_signature"


def _non_canonical_last_char(segment: str) -> str:
    """Same bytes, different text: set an unused low bit of the final base64url character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(segment[-1]) ^ 1]
    changed = segment[:-1] + last
    assert unb64(changed) == unb64(segment) and changed != segment
    return changed


def _variant_source(index: int) -> tuple[str, jws.PublicKey]:
    """A valid token whose segment ``index`` contains '-' or '_', and the key that verifies it."""
    for i in range(2000):
        key = keys.signing_key_from_pem(EC_PEM, kid=f"idp-ec-{i}" + "~?>" * (i % 3))
        token = jws.sign({**CLAIMS, "r": "~?>" * (i % 4)}, key)
        if any(c in token.split(".")[index] for c in "-_"):
            return token, key.public
    raise AssertionError("no token with - or _ in the segment")


def _segment_variants() -> list[Any]:
    out = []
    for index, name in ((0, "header"), (1, "payload"), (2, "signature")):
        token, key = _variant_source(index)
        part = token.split(".")[index]
        for variant, label in (
            (part + "=", "pad-1"),
            (part + "==", "pad-2"),
            (part.replace("-", "+").replace("_", "/"), "plus-slash"),
            (part + "\n", "trailing-newline"),
            (part[:5] + " " + part[5:], "space"),
            (part[:5] + "*" + part[5:], "star"),
        ):
            out.append(pytest.param(token, key, with_segment(token, index, variant), id=f"{name}-{label}"))
    return out


@pytest.mark.parametrize(("original", "key", "token"), _segment_variants())
def test_t33_segments_must_be_strict_base64url(original: str, key: jws.PublicKey, token: str) -> None:
    """jws.py promises 'segments are checked as strict base64url' -- for all three segments."""
    assert jws.verify(original, [key], algorithms=ALGS)["sub"] == "u1"
    assert refusal(token, [key]) == "malformed"


def test_t33_non_canonical_signature_encoding_refused() -> None:
    """A second spelling of the same signature bytes must not verify (token malleability)."""
    parts = ES_TOKEN.split(".")
    token = with_segment(ES_TOKEN, 2, _non_canonical_last_char(parts[2]))
    assert refusal(token) in {"malformed", "bad_signature"}


NESTED_HEADER = b'{"alg":"ES256","x":' + b"[" * 3000 + b"]" * 3000 + b"}"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(ES_TOKEN + ".", id="four-segments-empty"),
        pytest.param(ES_TOKEN + ".AAAA", id="four-segments"),
        pytest.param(ES_TOKEN + ".AAAA.AAAA", id="five-segments"),
        pytest.param(".".join(ES_TOKEN.split(".")[:2]), id="two-segments"),
        pytest.param(ES_TOKEN.split(".")[0], id="one-segment"),
        pytest.param("", id="empty"),
        pytest.param("..", id="three-empty"),
        pytest.param("...", id="four-empty"),
        pytest.param(f"{b64(b'not json')}.e30.AAAA", id="header-not-json"),
        pytest.param(f"{b64(b'[1,2]')}.e30.AAAA", id="header-list"),
        pytest.param(b64(b'"ES256"') + ".e30.AAAA", id="header-string"),
        pytest.param(b64(b"\xff\xfe") + ".e30.AAAA", id="header-not-utf8"),
        pytest.param(b64(b"[" * 5000) + ".e30.AAAA", id="header-deeply-nested"),
        pytest.param(b64(NESTED_HEADER) + ".e30.AAAA", id="header-nested-value"),
        pytest.param("A.e30.AAAA", id="header-impossible-length"),
        pytest.param("eyJhbGciOiJFUzI1NiJ9\u00e9.e30.AAAA", id="header-non-ascii"),
    ],
)
def test_t33_malformed_structure(token: str) -> None:
    """No exception but JoseError may escape: a RecursionError here would be a 500."""
    assert refusal(token) == "malformed"


def test_t33_non_string_token() -> None:
    assert refusal(ES_TOKEN.encode()) == "malformed"
    assert refusal(None) == "malformed"


@pytest.mark.parametrize(
    "payload",
    [b"[1, 2]", b'"a string"', b"42", b"null", b"not json", b"\xff\xfe", b'{"exp": NaN}', b'{"exp": Infinity}'],
)
def test_verify_payload_must_be_a_json_object(payload: bytes) -> None:
    """NaN and Infinity are not JSON (RFC 8259 section 6); a signed payload using them is malformed."""
    token = raw_sign(EC_PEM, {"alg": "ES256", "kid": "idp-ec"}, payload)
    assert refusal(token) == "malformed_payload"


@pytest.mark.parametrize("payload", [b"[" * 5000, b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}"])
def test_verify_deeply_nested_payload_is_a_jose_error(payload: bytes) -> None:
    token = raw_sign(EC_PEM, {"alg": "ES256", "kid": "idp-ec"}, payload)
    assert refusal(token) == "malformed_payload"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (f"{seg({'alg': 'ES256'})}.{b64(b'[' * 5000)}.AAAA", "malformed_payload"),
        (f"{seg({'alg': 'ES256'})}.{b64(b'[1]')}.AAAA", "malformed_payload"),
        (f"{seg({'alg': 'ES256'})}.{b64(b'nope')}.AAAA", "malformed_payload"),
        (f"{seg({'alg': 'HS256'})}.{seg(CLAIMS)}.AAAA", "algorithm_not_allowed"),
    ],
)
def test_unverified_claims_refusals(token: str, reason: str) -> None:
    with pytest.raises(JoseError) as info:
        jws.unverified_claims(token)
    assert info.value.reason == reason


def test_unverified_claims_reads_without_checking_the_signature() -> None:
    assert jws.unverified_claims(with_segment(ES_TOKEN, 2, "")) == CLAIMS


# --- algorithm and key matching ----------------------------------------------------------------------


def test_key_with_pinned_alg_refuses_another_alg() -> None:
    rs384 = keys.signing_key_from_pem(RSA_PEM, kid="idp-rsa", alg="RS384")
    token = jws.sign(CLAIMS, rs384)
    assert RSA_KEY.public.alg == "RS256"
    assert refusal(token, algorithms=["RS256", "RS384"]) == "no_matching_key"
    unpinned = jws.public_key_from_jwk({**dict(RSA_KEY.public.jwk), "kid": "idp-rsa"})
    assert jws.verify(token, [unpinned], algorithms=["RS384"]) == CLAIMS


def test_p384_key_refuses_es256() -> None:
    p384 = jws.public_key_from_jwk({**dict(P384_KEY.public.jwk), "kid": "idp-p384"})
    assert p384.alg is None
    token = raw_sign(P384_PEM, {"alg": "ES256", "kid": "idp-p384"}, json.dumps(CLAIMS).encode())
    assert refusal(token, [p384], algorithms=["ES256", "ES384"]) == "no_matching_key"
    relabelled = with_segment(jws.sign(CLAIMS, P384_KEY), 0, seg({"alg": "ES256", "kid": "idp-p384"}))
    assert refusal(relabelled, [p384], algorithms=["ES256", "ES384"]) == "no_matching_key"


@pytest.mark.parametrize(
    ("token", "key_set", "algorithms", "reason"),
    [
        (ES_TOKEN, IDP_KEYS, ["RS256"], "algorithm_not_allowed"),
        (RS_TOKEN, IDP_KEYS, ["ES256"], "algorithm_not_allowed"),
        (ES_TOKEN, [RSA_KEY.public], ALGS, "unknown_kid"),
        (ES_TOKEN, [], ALGS, "unknown_kid"),
        (raw_sign(EC_PEM, {"alg": "ES256"}, b"{}"), [], ALGS, "no_matching_key"),
        (raw_sign(EC_PEM, {"alg": "ES256"}, b"{}"), [RSA_KEY.public], ALGS, "no_matching_key"),
        (raw_sign(RSA_PEM, {"alg": "RS256", "kid": "idp-ec"}, b"{}"), IDP_KEYS, ALGS, "no_matching_key"),
        (raw_sign(EC_PEM, {"alg": "ES384", "kid": "idp-ec"}, b"{}"), IDP_KEYS, ["ES384"], "no_matching_key"),
    ],
)
def test_verify_key_selection(token: str, key_set: Any, algorithms: Any, reason: str) -> None:
    assert refusal(token, key_set, algorithms) == reason


@pytest.mark.parametrize(
    ("kty", "crv", "pinned", "allowed"),
    [
        ("RSA", None, None, {"RS256", "RS384", "RS512"}),
        ("RSA", None, "RS256", {"RS256"}),
        ("EC", "P-256", None, {"ES256"}),
        ("EC", "P-384", None, {"ES384"}),
        ("EC", "P-521", None, {"ES512"}),
        ("EC", "P-256", "ES384", set()),
        ("RSA", None, "ES256", set()),
    ],
)
def test_public_key_allows(kty: str, crv: str | None, pinned: str | None, allowed: set[str]) -> None:
    key = PublicKey(kid=None, kty=kty, crv=crv, alg=pinned, jwk={})
    every = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "PS256", "none", "EdDSA"}
    assert {alg for alg in every if key.allows(alg)} == allowed


# --- T34: size caps, JWE, zip, crit, PBES2 -----------------------------------------------------------


def test_default_cap_is_16_kib() -> None:
    assert jws.DEFAULT_MAX_TOKEN_BYTES == 16 * 1024


def test_t34_one_megabyte_token_rejected_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = jws.b64url_decode

    def counting(segment: str) -> bytes:
        calls.append(segment)
        return original(segment)

    monkeypatch.setattr(jws, "b64url_decode", counting)
    token = forge({"alg": "ES256", "kid": "k" * 1_000_000}, signature=b"\x00" * 64)
    assert len(token) > 1_000_000
    start = time.perf_counter()
    for _ in range(10):
        assert refusal(token) == "too_large"
        with pytest.raises(JoseError):
            jws.unverified_claims(token)
    assert time.perf_counter() - start < 0.1
    assert calls == []  # refused before any base64 decoding


def test_t34_cap_is_exact() -> None:
    assert jws.verify(ES_TOKEN, IDP_KEYS, algorithms=ALGS, max_bytes=len(ES_TOKEN)) == CLAIMS
    assert refusal(ES_TOKEN, max_bytes=len(ES_TOKEN) - 1) == "too_large"


def test_t34_token_just_over_default_cap() -> None:
    token = jws.sign({**CLAIMS, "pad": "x" * 16 * 1024}, EC_KEY)
    assert refusal(token) == "too_large"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(
            ".".join([seg({"alg": "RSA-OAEP", "enc": "A256GCM", "zip": "DEF"}), "AAAA", "AAAA", "AAAA", "AAAA"]),
            "malformed",
            id="jwe-five-segments",
        ),
        pytest.param(
            ".".join([seg({"alg": "dir", "enc": "A128GCM"}), "", "AAAA", "AAAA", "AAAA"]),
            "malformed",
            id="jwe-dir",
        ),
        pytest.param(
            forge({"alg": "PBES2-HS256+A128KW", "enc": "A128GCM", "p2c": 2147483647, "p2s": "AAAA"}),
            "algorithm_not_allowed",
            id="pbes2",
        ),
        pytest.param(forge({"alg": "ES256", "kid": "idp-ec", "zip": "DEF"}), "unsupported_header", id="zip"),
        pytest.param(forge({"alg": "ES256", "kid": "idp-ec", "enc": "A128GCM"}), "unsupported_header", id="enc"),
        pytest.param(forge({"alg": "ES256", "kid": "idp-ec", "crit": ["exp"]}), "unsupported_header", id="crit"),
        pytest.param(forge({"alg": "ES256", "kid": "idp-ec", "crit": []}), "unsupported_header", id="crit-empty"),
    ],
)
def test_t34_jwe_zip_crit_pbes2_refused(token: str, reason: str, no_library: None) -> None:
    assert refusal(token) == reason


def test_t34_zip_refused_even_when_properly_signed() -> None:
    token = raw_sign(EC_PEM, {"alg": "ES256", "kid": "idp-ec", "zip": "DEF"}, json.dumps(CLAIMS).encode())
    assert refusal(token) == "unsupported_header"


# --- JWKS parsing ------------------------------------------------------------------------------------


def test_parse_jwks_keeps_only_public_signature_keys() -> None:
    ec_jwk = {**keys.public_jwk(EC_KEY), "x5c": ["AAAA"], "x5t": "abc"}
    rsa_jwk = keys.public_jwk(RSA_KEY)
    secp256k1 = ec.generate_private_key(ec.SECP256K1()).public_key().public_numbers()
    document = {
        "keys": [
            {"kty": "oct", "k": b64(b"0" * 32), "kid": "oct"},
            {**rsa_jwk, "use": "enc", "kid": "enc"},
            {**dict(EC_KEY.private_jwk), "kid": "private-ec"},
            {**rsa_jwk, "p": "AQAB", "kid": "private-rsa"},
            {
                "kty": "EC",
                "crv": "secp256k1",
                "x": b64(secp256k1.x.to_bytes(32, "big")),
                "y": b64(secp256k1.y.to_bytes(32, "big")),
            },
            {"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x00" * 32), "kid": "okp"},
            {**rsa_jwk, "alg": "RSA-OAEP", "kid": "rsa-oaep"},
            {**rsa_jwk, "alg": "PS256", "kid": "ps256"},
            {"kty": "RSA", "e": "AQAB", "kid": "no-n"},
            {**rsa_jwk, "kid": 7},
            {**rsa_jwk, "n": 12345, "kid": "int-n"},
            "not a key",
            None,
            ec_jwk,
            rsa_jwk,
        ]
    }
    parsed = jws.parse_jwks(document)
    assert [(k.kid, k.kty, k.crv, k.alg) for k in parsed] == [
        ("idp-ec", "EC", "P-256", "ES256"),
        ("idp-rsa", "RSA", None, "RS256"),
    ]
    assert dict(parsed[0].jwk) == {k: ec_jwk[k] for k in ("kty", "crv", "x", "y")}
    assert dict(parsed[1].jwk) == {k: rsa_jwk[k] for k in ("kty", "n", "e")}
    assert jws.verify(ES_TOKEN, parsed, algorithms=ALGS) == CLAIMS
    assert jws.verify(RS_TOKEN, parsed, algorithms=ALGS) == CLAIMS


@pytest.mark.parametrize("document", [None, [], "keys", {}, {"keys": None}, {"keys": {}}, {"keys": "abc"}])
def test_parse_jwks_malformed_document(document: Any) -> None:
    with pytest.raises(JoseError) as info:
        jws.parse_jwks(document)
    assert info.value.reason == "malformed_jwks"


def test_parse_jwks_empty_list() -> None:
    assert jws.parse_jwks({"keys": []}) == ()


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ({"kty": "oct", "k": "AAAA"}, "unsupported_key_type"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "unsupported_key_type"),
        ({"n": "AQAB", "e": "AQAB"}, "unsupported_key_type"),
        ({"kty": "rsa", "n": "AQAB", "e": "AQAB"}, "unsupported_key_type"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"}, "key_not_for_signing"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": ""}, "key_not_for_signing"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"}, "private_key_in_jwks"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB", "p": "AQAB"}, "private_key_in_jwks"),
        ({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}, "private_key_in_jwks"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": 1}, "malformed_kid"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "none"}, "unsupported_algorithm"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "HS256"}, "unsupported_algorithm"),
        ({"kty": "RSA", "n": "AQAB"}, "malformed_key"),
        ({"kty": "RSA", "n": ["AQAB"], "e": "AQAB"}, "malformed_key"),
        ({"kty": "EC", "crv": "P-256", "x": "AA"}, "malformed_key"),
        ({"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"}, "unsupported_curve"),
        ({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}, "unsupported_curve"),
    ],
)
def test_public_key_from_jwk_refusals(jwk: dict[str, Any], reason: str) -> None:
    with pytest.raises(JoseError) as info:
        jws.public_key_from_jwk(jwk)
    assert info.value.reason == reason


# --- base64url helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"\x00", "AA"),
        (b"\xfb\xff", "-_8"),
        (b"\xfb\xff\xbf", "-_-_"),
        (b"any carnal pleas", "YW55IGNhcm5hbCBwbGVhcw"),
    ],
)
def test_b64url_round_trip(data: bytes, text: str) -> None:
    assert jws.b64url_encode(data) == text
    assert jws.b64url_decode(text) == data


@pytest.mark.parametrize("text", ["AA==", "AA=", "+/8", "/w", "A", "AAAAA", "A A", "AA\n", "AAAA\n", "AAAA\r", "é"])
def test_b64url_decode_is_strict(text: str) -> None:
    with pytest.raises(JoseError) as info:
        jws.b64url_decode(text)
    assert info.value.reason == "malformed"
