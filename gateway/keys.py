"""Key material (pure layer): load PEM private keys, make JWKs and RFC 7638 thumbprints, generate keys."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.protocol.jws import (
    DecryptionKey,
    PublicKey,
    SigningKey,
    b64url_encode,
    encryption_public_key_from_jwk,
    public_key_from_jwk,
)

_EC_ALG = {
    "secp256r1": ("ES256", "P-256", 32),
    "secp384r1": ("ES384", "P-384", 48),
    "secp521r1": ("ES512", "P-521", 66),
}


class KeyFileError(ValueError):
    """The key file is missing, unreadable or of an unsupported kind; the message says which."""


def _int_b64(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big"))


def private_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[dict[str, str], str]:
    """Return (private JWK without kid, default algorithm) for an RSA or EC private key."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise KeyFileError("RSA keys must have at least 2048 bits")
        n = key.private_numbers()
        pub = n.public_numbers
        jwk = {
            "kty": "RSA",
            "n": _int_b64(pub.n),
            "e": _int_b64(pub.e),
            "d": _int_b64(n.d),
            "p": _int_b64(n.p),
            "q": _int_b64(n.q),
            "dp": _int_b64(n.dmp1),
            "dq": _int_b64(n.dmq1),
            "qi": _int_b64(n.iqmp),
        }
        return jwk, "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _EC_ALG:
            raise KeyFileError(f"EC curve {key.curve.name} is not supported (use P-256)")
        alg, crv, size = _EC_ALG[key.curve.name]
        numbers = key.private_numbers()
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": _int_b64(numbers.public_numbers.x, size),
            "y": _int_b64(numbers.public_numbers.y, size),
            "d": _int_b64(numbers.private_value, size),
        }
        return jwk, alg
    raise KeyFileError("only RSA and EC private keys are supported")


def thumbprint(jwk: dict[str, str] | dict[str, object]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) over the required public members."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def signing_key_from_pem(pem: bytes, *, kid: str | None = None, alg: str | None = None) -> SigningKey:
    key = _private_key_from_pem(pem)
    jwk, default_alg = private_jwk(key)
    chosen_alg = alg or default_alg
    fits = chosen_alg == default_alg if default_alg.startswith("ES") else chosen_alg in ("RS256", "RS384", "RS512")
    if not fits:
        raise KeyFileError(f"algorithm {chosen_alg} does not fit this key (use {default_alg})")
    key_id = kid or thumbprint(jwk)
    public = {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "n", "e")}
    public_key: PublicKey = public_key_from_jwk({**public, "kid": key_id, "alg": chosen_alg, "use": "sig"})
    return SigningKey(kid=key_id, alg=chosen_alg, private_jwk=jwk, public=public_key)


def load_signing_key(path: str | Path, *, kid: str | None = None, alg: str | None = None) -> SigningKey:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from exc
    return signing_key_from_pem(pem, kid=kid, alg=alg)


def _private_key_from_pem(pem: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError("not an unencrypted PEM private key (PKCS#8 or traditional)") from exc
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise KeyFileError("only RSA and EC private keys are supported")
    return key


def encryption_key_from_pem(pem: bytes, *, kid: str | None = None) -> DecryptionKey:
    """An encryption (JWE) key: RSA of at least 2048 bits (RSA-OAEP*) or EC P-256 (ECDH-ES*)."""
    key = _private_key_from_pem(pem)
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name != "secp256r1":
        raise KeyFileError(f"EC curve {key.curve.name} is not supported for encryption (use P-256 or RSA 2048+)")
    jwk, _alg = private_jwk(key)
    key_id = kid or thumbprint(jwk)
    public = {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "n", "e")}
    # No alg pinned: the OP picks one of ours from the client registration (RSA-OAEP-256 for FTN).
    return DecryptionKey(
        kid=key_id, private_jwk=jwk, public=encryption_public_key_from_jwk({**public, "kid": key_id, "use": "enc"})
    )


def load_encryption_key(path: str | Path) -> DecryptionKey:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from exc
    return encryption_key_from_pem(pem)


def same_key_material(signing: SigningKey, encryption: DecryptionKey) -> bool:
    """True when both are one key pair (same RFC 7638 thumbprint), whatever their kids and files."""
    return thumbprint(dict(signing.public.jwk)) == thumbprint(dict(encryption.public.jwk))


def generate_ec_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_rsa_pem(bits: int = 2048) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_session_secret() -> str:
    return secrets.token_urlsafe(32)


def public_jwk(key: SigningKey) -> dict[str, str]:
    """The JWK an upstream or an IdP uses to verify what ``key`` signed."""
    return {**{k: str(v) for k, v in key.public.jwk.items()}, "kid": key.kid, "alg": key.alg, "use": "sig"}


def encryption_public_jwk(key: DecryptionKey) -> dict[str, str]:
    """The JWK an OP encrypts ID tokens and UserInfo to (published at /_auth/client-jwks/<provider>.json)."""
    return {**{k: str(v) for k, v in key.public.jwk.items()}, "kid": key.kid, "use": "enc"}
