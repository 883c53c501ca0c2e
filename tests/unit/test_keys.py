"""Key material: RFC 7638 thumbprints, PEM loading and its refusals, JWK shapes, key generation."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway import keys
from gateway.keys import KeyFileError
from gateway.protocol import jws

# RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknj"
    "hMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQ"
    "vRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def pem_of(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def independent_thumbprint(members: dict[str, str]) -> str:
    canonical = "{" + ",".join(f'"{k}":"{members[k]}"' for k in sorted(members)) + "}"
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- RFC 7638 thumbprints ----------------------------------------------------------------------------


def test_thumbprint_rfc7638_example() -> None:
    jwk = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert keys.thumbprint(jwk) == RFC7638_THUMBPRINT


def test_thumbprint_ignores_optional_members() -> None:
    bare = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB"}
    extra: dict[str, object] = {**bare, "use": "sig", "kid": "x", "d": "secret", "x5c": ["AAAA"]}
    assert keys.thumbprint(bare) == keys.thumbprint(extra) == RFC7638_THUMBPRINT


def test_thumbprint_ec_matches_an_independent_computation() -> None:
    key = keys.signing_key_from_pem(keys.generate_ec_pem())
    members = {m: str(key.public.jwk[m]) for m in ("crv", "kty", "x", "y")}
    assert keys.thumbprint({k: str(v) for k, v in key.public.jwk.items()}) == independent_thumbprint(members)
    assert key.kid == independent_thumbprint(members)


def test_thumbprint_rsa_matches_an_independent_computation() -> None:
    key = keys.signing_key_from_pem(keys.generate_rsa_pem())
    members = {m: str(key.public.jwk[m]) for m in ("e", "kty", "n")}
    assert key.kid == independent_thumbprint(members)


# --- JWK shape -----------------------------------------------------------------------------------------


def _ec_key_with_short_coordinate() -> tuple[int, ec.EllipticCurvePrivateKey]:
    """A P-256 key whose x coordinate has a leading zero byte (found deterministically)."""
    for d in range(1, 5000):
        candidate = ec.derive_private_key(d, ec.SECP256R1())
        if candidate.public_key().public_numbers().x < 2**248:
            return d, candidate
    raise AssertionError("no short coordinate found")


def test_ec_coordinates_are_fixed_length() -> None:
    """RFC 7518 section 6.2.1.2: x, y and d are the full curve size, leading zeros kept."""
    d, key = _ec_key_with_short_coordinate()
    signing = keys.signing_key_from_pem(pem_of(key))
    numbers = key.public_key().public_numbers()
    assert unb64(signing.private_jwk["x"]) == numbers.x.to_bytes(32, "big")
    assert unb64(signing.private_jwk["x"])[0] == 0
    assert unb64(signing.private_jwk["y"]) == numbers.y.to_bytes(32, "big")
    assert unb64(signing.private_jwk["d"]) == d.to_bytes(32, "big")
    token = jws.sign({"sub": "u1"}, signing)
    assert jws.verify(token, [signing.public], algorithms=["ES256"]) == {"sub": "u1"}


@pytest.mark.parametrize(
    ("curve", "alg", "crv", "size"),
    [
        (ec.SECP256R1(), "ES256", "P-256", 32),
        (ec.SECP384R1(), "ES384", "P-384", 48),
        (ec.SECP521R1(), "ES512", "P-521", 66),
    ],
)
def test_ec_curves_pick_their_algorithm(curve: ec.EllipticCurve, alg: str, crv: str, size: int) -> None:
    signing = keys.signing_key_from_pem(pem_of(ec.generate_private_key(curve)))
    assert (signing.alg, signing.public.crv, signing.public.alg) == (alg, crv, alg)
    assert {len(unb64(signing.private_jwk[m])) for m in ("x", "y", "d")} == {size}
    token = jws.sign({"sub": "u1"}, signing)
    assert jws.verify(token, [signing.public], algorithms=[alg]) == {"sub": "u1"}


def test_rsa_private_jwk_members() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing = keys.signing_key_from_pem(pem_of(key))
    numbers = key.private_numbers()
    assert sorted(signing.private_jwk) == ["d", "dp", "dq", "e", "kty", "n", "p", "q", "qi"]
    assert signing.private_jwk["e"] == "AQAB"
    assert int.from_bytes(unb64(signing.private_jwk["n"]), "big") == numbers.public_numbers.n
    assert int.from_bytes(unb64(signing.private_jwk["d"]), "big") == numbers.d
    assert int.from_bytes(unb64(signing.private_jwk["qi"]), "big") == numbers.iqmp
    assert signing.alg == "RS256"


@pytest.mark.parametrize("make", [keys.generate_ec_pem, keys.generate_rsa_pem], ids=["ec", "rsa"])
def test_public_jwk_has_no_private_members(make: object) -> None:
    signing = keys.signing_key_from_pem(make())  # type: ignore[operator]
    public = keys.public_jwk(signing)
    expected = (
        {"kty", "crv", "x", "y", "kid", "alg", "use"}
        if signing.alg == "ES256"
        else {"kty", "n", "e", "kid", "alg", "use"}
    )
    assert set(public) == expected
    assert (public["kid"], public["alg"], public["use"]) == (signing.kid, signing.alg, "sig")
    parsed = jws.parse_jwks({"keys": [public]})
    token = jws.sign({"sub": "u1", "iat": int(time.time())}, signing)
    assert jws.verify(token, parsed, algorithms=[signing.alg])["sub"] == "u1"


def test_kid_override() -> None:
    signing = keys.signing_key_from_pem(keys.generate_ec_pem(), kid="my-key-2024")
    assert signing.kid == signing.public.kid == "my-key-2024"
    assert jws.read_header(jws.sign({}, signing))["kid"] == "my-key-2024"


# --- algorithm choice --------------------------------------------------------------------------------

EC_PEM = keys.generate_ec_pem()
RSA_PEM = keys.generate_rsa_pem()


@pytest.mark.parametrize(
    ("pem", "alg", "expected"),
    [
        (EC_PEM, None, "ES256"),
        (EC_PEM, "ES256", "ES256"),
        (RSA_PEM, None, "RS256"),
        (RSA_PEM, "RS256", "RS256"),
        (RSA_PEM, "RS384", "RS384"),
        (RSA_PEM, "RS512", "RS512"),
    ],
)
def test_algorithm_fits_key(pem: bytes, alg: str | None, expected: str) -> None:
    signing = keys.signing_key_from_pem(pem, alg=alg)
    assert signing.alg == signing.public.alg == expected
    assert jws.read_header(jws.sign({}, signing))["alg"] == expected


@pytest.mark.parametrize(
    ("pem", "alg"),
    [
        (EC_PEM, "ES384"),
        (EC_PEM, "ES512"),
        (EC_PEM, "RS256"),
        (EC_PEM, "HS256"),
        (RSA_PEM, "ES256"),
        (RSA_PEM, "PS256"),
        (RSA_PEM, "HS256"),
        (RSA_PEM, "none"),
        (RSA_PEM, "RSA-OAEP"),
    ],
)
def test_algorithm_that_does_not_fit_is_a_key_file_error(pem: bytes, alg: str) -> None:
    """Callers (runtime.build_runtime) catch KeyFileError only; any other error would escape."""
    with pytest.raises(KeyFileError, match=f"algorithm {alg} does not fit this key"):
        keys.signing_key_from_pem(pem, alg=alg)


# --- load_signing_key refusals -----------------------------------------------------------------------


def _encrypted_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )


def _public_pem() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _der() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


NOT_A_KEY = "not an unencrypted PEM private key (PKCS#8 or traditional)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", NOT_A_KEY, id="empty"),
        pytest.param(b"hello world\n", NOT_A_KEY, id="text"),
        pytest.param(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", NOT_A_KEY, id="broken-pem"),
        pytest.param(_public_pem(), NOT_A_KEY, id="public-key"),
        pytest.param(_encrypted_pem(), NOT_A_KEY, id="encrypted"),
        pytest.param(_der(), NOT_A_KEY, id="der"),
        pytest.param(
            pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            "RSA keys must have at least 2048 bits",
            id="rsa-1024",
        ),
        pytest.param(
            pem_of(ec.generate_private_key(ec.SECP192R1())),
            "EC curve secp192r1 is not supported (use P-256)",
            id="p-192",
        ),
        pytest.param(
            pem_of(ec.generate_private_key(ec.SECP256K1())),
            "EC curve secp256k1 is not supported (use P-256)",
            id="secp256k1",
        ),
        pytest.param(
            pem_of(ec.generate_private_key(ec.BrainpoolP256R1())),
            "EC curve brainpoolP256r1 is not supported (use P-256)",
            id="brainpool",
        ),
        pytest.param(
            pem_of(ed25519.Ed25519PrivateKey.generate()), "only RSA and EC private keys are supported", id="ed25519"
        ),
    ],
)
def test_load_signing_key_refusals(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    with pytest.raises(KeyFileError) as info:
        keys.load_signing_key(path)
    assert str(info.value) == message


def test_load_signing_key_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.pem"
    with pytest.raises(KeyFileError) as info:
        keys.load_signing_key(path)
    assert str(info.value) == f"cannot read {path}: No such file or directory"


def test_load_signing_key_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"^cannot read "):
        keys.load_signing_key(tmp_path)


def test_load_signing_key_accepts_traditional_ec_format(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    path = tmp_path / "ec.pem"
    path.write_bytes(pem)
    loaded = keys.load_signing_key(str(path), kid="k1")
    assert (loaded.kid, loaded.alg) == ("k1", "ES256")
    assert loaded.kid == loaded.public.kid


# --- generation (what `eid-gateway keygen` prints) ---------------------------------------------------


def test_generate_ec_pem_loads_as_es256() -> None:
    pem = keys.generate_ec_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    signing = keys.signing_key_from_pem(pem)
    assert (signing.alg, signing.public.kty, signing.public.crv) == ("ES256", "EC", "P-256")
    assert len(signing.kid) == 43
    assert keys.generate_ec_pem() != pem


def test_generate_rsa_pem_loads_as_rs256() -> None:
    pem = keys.generate_rsa_pem()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert keys.signing_key_from_pem(pem).alg == "RS256"


def test_generate_rsa_pem_too_small_is_refused_on_load() -> None:
    with pytest.raises(KeyFileError):
        keys.signing_key_from_pem(keys.generate_rsa_pem(1024))


def test_generate_session_secret() -> None:
    secrets_made = {keys.generate_session_secret() for _ in range(50)}
    assert len(secrets_made) == 50
    for secret in secrets_made:
        assert len(secret) == 43
        assert len(unb64(secret)) == 32
        assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_signing_key_public_is_consistent() -> None:
    signing = keys.signing_key_from_pem(keys.generate_ec_pem())
    public = dict(signing.public.jwk)
    assert public == {k: signing.private_jwk[k] for k in ("kty", "crv", "x", "y")}
    assert json.loads(json.dumps(keys.public_jwk(signing)))["kid"] == signing.kid
