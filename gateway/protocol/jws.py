"""The only door to python-jose (pure layer): JWS signing and verification with pinned algorithms.

python-jose is used only here, and only for compact JWS with asymmetric keys. This module closes the
holes that the library leaves open (attacks.md T29-T34):
- algorithms come from our allow-list and from the key's type, never from the token alone;
  ``alg: none`` and every HMAC algorithm are refused before the library sees the token (T29, T30);
- keys are built only from JWKs we were given (the provider's jwks_uri, our own key files), with
  ``kty``/``crv`` matched to ``alg``; ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never used (T31);
- segments are checked as strict base64url and the whole token is size-capped before decoding;
  JWE (five segments), ``zip`` and ``crit`` are refused (T33, T34);
- ``algorithms=None`` is never passed to the library.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jose import jwk as jose_jwk
from jose import jws as jose_jws
from jose.exceptions import JOSEError

from gateway.protocol import strict_json

#: Asymmetric algorithms python-jose's cryptography backend implements; HMAC is absent on purpose.
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
_EC_CURVE_FOR_ALG = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
DEFAULT_MAX_TOKEN_BYTES = 16 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_FORBIDDEN_HEADERS = ("crit", "zip", "enc")


class JoseError(ValueError):
    """A token or key was refused; ``reason`` is a short word safe for logs and metric labels."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A verification key taken from a JWK; ``alg`` is None when the JWK does not pin one."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    jwk: Mapping[str, Any]

    def allows(self, alg: str) -> bool:
        if alg not in ASYMMETRIC_ALGORITHMS or (self.alg is not None and self.alg != alg):
            return False
        if alg.startswith("RS"):
            return self.kty == "RSA"
        return self.kty == "EC" and self.crv == _EC_CURVE_FOR_ALG[alg]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key with its algorithm and key id; ``private_jwk`` holds the private parameters."""

    kid: str
    alg: str
    private_jwk: Mapping[str, Any]
    public: PublicKey


def b64url_decode(segment: str) -> bytes:
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise JoseError("malformed")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JoseError("malformed") from exc
    # Only the canonical spelling is accepted: unused trailing bits would make tokens malleable.
    if b64url_encode(data) != segment:
        raise JoseError("malformed")
    return data


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """Accept only RSA and EC signature keys; symmetric and encryption keys are refused."""
    kty = jwk.get("kty")
    if kty not in ("RSA", "EC"):
        raise JoseError("unsupported_key_type")
    if jwk.get("use") not in (None, "sig"):
        raise JoseError("key_not_for_signing")
    if "d" in jwk or "p" in jwk:
        raise JoseError("private_key_in_jwks")
    kid = jwk.get("kid")
    alg = jwk.get("alg")
    crv = jwk.get("crv")
    if kid is not None and not isinstance(kid, str):
        raise JoseError("malformed_kid")
    if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
        raise JoseError("unsupported_algorithm")
    required = ("n", "e") if kty == "RSA" else ("crv", "x", "y")
    if not all(isinstance(jwk.get(name), str) for name in required):
        raise JoseError("malformed_key")
    if kty == "EC" and crv not in _EC_CURVE_FOR_ALG.values():
        raise JoseError("unsupported_curve")
    public_jwk = {k: jwk[k] for k in ("kty", *required) if k in jwk}
    return PublicKey(kid=kid, kty=kty, crv=crv, alg=alg, jwk=public_jwk)


def parse_jwks(document: object) -> tuple[PublicKey, ...]:
    """Parse a JWKS document, skipping keys we cannot use (encryption keys, symmetric keys)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JoseError("malformed_jwks")
    keys: list[PublicKey] = []
    for entry in document["keys"]:
        if not isinstance(entry, Mapping):
            continue
        try:
            keys.append(public_key_from_jwk(entry))
        except JoseError:
            continue
    return tuple(keys)


def read_header(token: str, *, max_bytes: int = DEFAULT_MAX_TOKEN_BYTES) -> dict[str, Any]:
    """Decode and sanity-check the protected header without trusting any of it."""
    if not isinstance(token, str) or len(token) > max_bytes:
        raise JoseError("too_large" if isinstance(token, str) else "malformed")
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("malformed")
    # Every segment is checked here, strictly: python-jose's own decoder accepts padding and the
    # standard alphabet, which would let one signature be spelled several ways.
    b64url_decode(parts[1])
    b64url_decode(parts[2])
    try:
        header = strict_json.loads(b64url_decode(parts[0]))
    except ValueError as exc:
        raise JoseError("malformed") from exc
    if not isinstance(header, dict):
        raise JoseError("malformed")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
        raise JoseError("algorithm_not_allowed")
    if any(name in header for name in _FORBIDDEN_HEADERS):
        raise JoseError("unsupported_header")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
        raise JoseError("malformed_kid")
    return header


def verify(
    token: str,
    keys: Sequence[PublicKey],
    *,
    algorithms: Collection[str],
    max_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
) -> dict[str, Any]:
    """Verify a compact JWS against ``keys`` and return its JSON-object payload.

    Raises JoseError("unknown_kid") when no key carries the token's kid, so the caller can refresh
    its JWKS once (rate-limited) and try again.
    """
    header = read_header(token, max_bytes=max_bytes)
    alg = header["alg"]
    if alg not in algorithms:
        raise JoseError("algorithm_not_allowed")
    kid = header.get("kid")
    if kid is not None:
        candidates = [k for k in keys if k.kid == kid]
        if not candidates:
            raise JoseError("unknown_kid")
    else:
        candidates = list(keys)
    candidates = [k for k in candidates if k.allows(alg)]
    if not candidates:
        raise JoseError("no_matching_key")
    for key in candidates:
        try:
            prepared = jose_jwk.construct(dict(key.jwk), algorithm=alg)
            payload = jose_jws.verify(token, prepared, algorithms=[alg])
        except (JOSEError, ValueError, TypeError):
            continue
        try:
            claims = strict_json.loads(payload)
        except ValueError as exc:
            raise JoseError("malformed_payload") from exc
        if not isinstance(claims, dict):
            raise JoseError("malformed_payload")
        return claims
    raise JoseError("bad_signature")


#: Prepared private keys: building one from its JWK validates it (about 50 ms for RSA-2048), so a key is
#: built once, not per signature (client assertions are signed for every headless poll).
_PREPARED: dict[tuple[str, str, str], Any] = {}


def _prepared(key: SigningKey) -> Any:
    cache_key = (key.kid, key.alg, str(key.private_jwk.get("d", "")))
    prepared = _PREPARED.get(cache_key)
    if prepared is None:
        if len(_PREPARED) >= 64:
            _PREPARED.clear()
        prepared = _PREPARED[cache_key] = jose_jwk.construct(dict(key.private_jwk), algorithm=key.alg)
    return prepared


def sign(claims: Mapping[str, Any], key: SigningKey, *, typ: str = "JWT") -> str:
    """Sign ``claims`` as a compact JWS with the key's pinned algorithm and kid."""
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False)
    prepared = _prepared(key)
    token: str = jose_jws.sign(
        payload.encode("utf-8"), prepared, headers={"kid": key.kid, "typ": typ}, algorithm=key.alg
    )
    return token


def unverified_claims(token: str, *, max_bytes: int = DEFAULT_MAX_TOKEN_BYTES) -> dict[str, Any]:
    """Payload of a token whose signature is checked elsewhere (tests, logging of reasons only)."""
    read_header(token, max_bytes=max_bytes)
    try:
        claims = strict_json.loads(b64url_decode(token.split(".")[1]))
    except ValueError as exc:
        raise JoseError("malformed_payload") from exc
    if not isinstance(claims, dict):
        raise JoseError("malformed_payload")
    return claims
