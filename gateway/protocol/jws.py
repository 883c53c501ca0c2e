"""The only door to python-jose and joserfc (pure layer): JWS with pinned algorithms, JWE with an allow-list.

python-jose is used only here, and only for compact JWS with asymmetric keys; joserfc only here, and only
for compact JWE (docs/development.md says why two libraries and why joserfc). This module closes the holes
that the libraries leave open (attacks.md T29-T34):
- algorithms come from our allow-list and from the key's type, never from the token alone;
  ``alg: none`` and every HMAC algorithm are refused before the library sees the token (T29, T30);
- keys are built only from JWKs we were given (the provider's jwks_uri, our own key files), with
  ``kty``/``crv`` matched to ``alg``; ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never used (T31);
- segments are checked as strict base64url and the whole token is size-capped before decoding;
  a JWE where a JWS is expected, ``zip`` and ``crit`` are refused (T33, T34);
- ``algorithms=None`` is never passed to the library.

JWE (``decrypt``, ``unwrap_nested``, ``encrypt``): only the key-management algorithms in JWE_ALGORITHMS
and the content encryptions in JWE_ENCRYPTIONS; ``RSA1_5`` (Bleichenbacher), ``dir`` (a shared secret),
the AES-KW/GCMKW and PBES2 families (symmetric; p2c bombs, T34), ``zip`` (inflate bombs, T34), ``crit``,
and ``jku``/``jwk``/``x5u``/``x5c`` are refused from our own parse of the header, before joserfc sees the
token. Every decryption failure (wrong key, bad tag, bad ciphertext) is one reason, ``jwe_decrypt_failed``,
so a caller cannot learn which step failed. A JWE must hold a JWS (``cty`` JWT or absent), never plain
claims and never another JWE.
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
from joserfc import jwe as rfc_jwe
from joserfc import jwk as rfc_jwk
from joserfc.errors import JoseError as RfcJoseError

from gateway.protocol import strict_json

#: Asymmetric algorithms python-jose's cryptography backend implements; HMAC is absent on purpose.
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
_EC_CURVE_FOR_ALG = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
DEFAULT_MAX_TOKEN_BYTES = 16 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
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


# ---------------------------------------------------------------------------------------------- JWE

#: Key management we accept (issue 16 item 5): RSA-OAEP with SHA-1 or SHA-256 and ECDH-ES, direct or with
#: AES key wrap. Absent on purpose: RSA1_5 (padding oracle), dir and every symmetric or password family.
JWE_ALGORITHMS = frozenset({"RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW"})
#: Content encryption we accept (all authenticated; A192* omitted: no Nordic OP uses them).
JWE_ENCRYPTIONS = frozenset({"A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM"})
#: A JWE carries a whole JWS plus its own header, key and tag: room for a 16 KiB ID token inside.
DEFAULT_MAX_JWE_BYTES = 32 * 1024
#: Header parameters refused in a JWE: inflate bombs (zip), extensions we cannot honour (crit), and every
#: header that names a key by URL or embeds one (we decrypt only with our own keys).
_JWE_FORBIDDEN_HEADERS = ("zip", "crit", "jku", "jwk", "x5u", "x5c", "p2s", "p2c")
#: Our order of preference when we choose (request objects): SHA-256 OAEP and GCM first.
_JWE_ALG_PREFERENCE = ("RSA-OAEP-256", "ECDH-ES+A256KW", "ECDH-ES+A128KW", "ECDH-ES", "RSA-OAEP")
_JWE_ENC_PREFERENCE = ("A256GCM", "A128GCM", "A256CBC-HS512", "A128CBC-HS256")
#: Curves ECDH-ES keys may use (ours are P-256 only; an OP's may be any NIST curve joserfc implements).
_ECDH_CURVES = frozenset({"P-256", "P-384", "P-521"})


def _jwe_alg_fits(alg: str, kty: str, crv: str | None) -> bool:
    if alg.startswith("RSA-OAEP"):
        return kty == "RSA"
    return alg.startswith("ECDH-ES") and kty == "EC" and crv in _ECDH_CURVES


@dataclass(frozen=True, slots=True)
class EncryptionPublicKey:
    """A public key to encrypt to: an OP's ``use: enc`` JWK, or the public half of one of our keys."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    jwk: Mapping[str, Any]

    def allows(self, alg: str) -> bool:
        if alg not in JWE_ALGORITHMS or (self.alg is not None and self.alg != alg):
            return False
        return _jwe_alg_fits(alg, self.kty, self.crv)


@dataclass(frozen=True, slots=True)
class DecryptionKey:
    """One of our private encryption keys (``encryption_key_file``): kid, private JWK, public half."""

    kid: str
    private_jwk: Mapping[str, Any]
    public: EncryptionPublicKey

    def allows(self, alg: str) -> bool:
        return self.public.allows(alg)


def encryption_public_key_from_jwk(jwk: Mapping[str, Any]) -> EncryptionPublicKey:
    """Accept only RSA and EC keys meant for encryption (``use: enc``, or no ``use`` with a JWE ``alg``)."""
    kty = jwk.get("kty")
    if kty not in ("RSA", "EC"):
        raise JoseError("unsupported_key_type")
    alg = jwk.get("alg")
    use = jwk.get("use")
    if use != "enc" and not (use is None and alg in JWE_ALGORITHMS):
        raise JoseError("key_not_for_encryption")
    if "d" in jwk or "p" in jwk:
        raise JoseError("private_key_in_jwks")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
        raise JoseError("malformed_kid")
    if alg is not None and alg not in JWE_ALGORITHMS:
        raise JoseError("jwe_algorithm_not_allowed")
    required = ("n", "e") if kty == "RSA" else ("crv", "x", "y")
    if not all(isinstance(jwk.get(name), str) for name in required):
        raise JoseError("malformed_key")
    crv = jwk.get("crv")
    if kty == "EC" and crv not in _ECDH_CURVES:
        raise JoseError("unsupported_curve")
    public_jwk = {k: jwk[k] for k in ("kty", *required)}
    return EncryptionPublicKey(kid=kid, kty=kty, crv=crv, alg=alg, jwk=public_jwk)


def parse_encryption_jwks(document: object) -> tuple[EncryptionPublicKey, ...]:
    """The encryption keys of a JWKS document; signing, symmetric and unusable keys are skipped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JoseError("malformed_jwks")
    keys: list[EncryptionPublicKey] = []
    for entry in document["keys"]:
        if not isinstance(entry, Mapping):
            continue
        try:
            keys.append(encryption_public_key_from_jwk(entry))
        except JoseError:
            continue
    return tuple(keys)


def choose_request_encryption(
    keys: Sequence[EncryptionPublicKey],
    supported_algs: Sequence[str] | None,
    supported_encs: Sequence[str] | None,
) -> tuple[EncryptionPublicKey, str, str]:
    """(key, alg, enc) for a request object: what the OP says it supports, within our allow-list.

    ``supported_*`` are discovery's ``request_object_encryption_alg_values_supported`` and
    ``..._enc_values_supported``; absent means the OP does not take encrypted request objects.
    """
    algs = [a for a in _JWE_ALG_PREFERENCE if supported_algs and a in supported_algs]
    encs = [e for e in _JWE_ENC_PREFERENCE if supported_encs and e in supported_encs]
    if not algs:
        raise JoseError("request_encryption_alg_unsupported")
    if not encs:
        raise JoseError("request_encryption_enc_unsupported")
    for alg in algs:
        for key in keys:
            if key.allows(alg):
                return key, alg, encs[0]
    raise JoseError("request_encryption_no_key")


def is_jwe(token: str) -> bool:
    """A compact JWE has five segments, a JWS three (RFC 7516 §9)."""
    return isinstance(token, str) and token.count(".") == 4


def read_jwe_header(
    token: str,
    *,
    algorithms: Collection[str] = JWE_ALGORITHMS,
    encryptions: Collection[str] = JWE_ENCRYPTIONS,
    max_bytes: int = DEFAULT_MAX_JWE_BYTES,
) -> dict[str, Any]:
    """Decode and check a compact JWE's protected header, without decrypting; nothing of it is trusted."""
    if not isinstance(token, str):
        raise JoseError("jwe_malformed")
    if len(token) > max_bytes:
        raise JoseError("too_large")
    parts = token.split(".")
    if len(parts) != 5:
        raise JoseError("jwe_malformed")
    try:
        # Every segment strictly (joserfc's decoder is lenient); the encrypted key is empty for ECDH-ES.
        for segment in parts[1:]:
            b64url_decode(segment)
        header = strict_json.loads(b64url_decode(parts[0]))
    except ValueError as exc:
        raise JoseError("jwe_malformed") from exc
    if not isinstance(header, dict) or not parts[2] or not parts[3] or not parts[4]:
        raise JoseError("jwe_malformed")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in JWE_ALGORITHMS or alg not in algorithms:
        raise JoseError("jwe_algorithm_not_allowed")
    # Direct key agreement carries no encrypted key; every other allowed algorithm carries one.
    if (alg == "ECDH-ES") != (parts[1] == ""):
        raise JoseError("jwe_malformed")
    enc = header.get("enc")
    if not isinstance(enc, str) or enc not in JWE_ENCRYPTIONS or enc not in encryptions:
        raise JoseError("jwe_encryption_not_allowed")
    if any(name in header for name in _JWE_FORBIDDEN_HEADERS):
        raise JoseError("jwe_unsupported_header")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
        raise JoseError("malformed_kid")
    if alg.startswith("ECDH-ES"):
        epk = header.get("epk")
        # The ephemeral key must be a bare public EC key; the curve is matched to ours below.
        if (
            not isinstance(epk, dict)
            or epk.get("kty") != "EC"
            or "d" in epk
            or not all(isinstance(epk.get(n), str) for n in ("crv", "x", "y"))
        ):
            raise JoseError("jwe_malformed")
    return header


#: Prepared joserfc keys, built once per key (an RSA private key check costs tens of milliseconds).
_RFC_KEYS: dict[tuple[str, str], Any] = {}


def _rfc_key(jwk: Mapping[str, Any], kid: str | None) -> Any:
    cache_key = (kid or "", json.dumps(dict(jwk), sort_keys=True))
    key = _RFC_KEYS.get(cache_key)
    if key is None:
        if len(_RFC_KEYS) >= 64:
            _RFC_KEYS.clear()
        key = _RFC_KEYS[cache_key] = rfc_jwk.import_key(dict(jwk))
    return key


def _registry(alg: str, enc: str) -> rfc_jwe.JWERegistry:
    # Exactly this token's pair, already checked against our lists: joserfc's own choice never applies.
    # strict_check_header off: unknown, non-critical header names are ignorable (RFC 7516 §4); the
    # dangerous ones were refused above.
    return rfc_jwe.JWERegistry(algorithms=[alg, enc], strict_check_header=False)


def decrypt(
    token: str,
    keys: Sequence[DecryptionKey],
    *,
    algorithms: Collection[str] = JWE_ALGORITHMS,
    encryptions: Collection[str] = JWE_ENCRYPTIONS,
    max_bytes: int = DEFAULT_MAX_JWE_BYTES,
) -> bytes:
    """The plaintext of a compact JWE for one of ``keys`` (picked by kid, else each key of a fitting type)."""
    header = read_jwe_header(token, algorithms=algorithms, encryptions=encryptions, max_bytes=max_bytes)
    alg, enc, kid = header["alg"], header["enc"], header.get("kid")
    if kid is not None:
        candidates = [k for k in keys if k.kid == kid]
        if not candidates:
            raise JoseError("jwe_unknown_key")
    else:
        candidates = list(keys)
    candidates = [k for k in candidates if k.allows(alg)]
    if alg.startswith("ECDH-ES"):
        candidates = [k for k in candidates if k.public.crv == header["epk"]["crv"]]
    if not candidates:
        raise JoseError("jwe_unknown_key")
    for key in candidates:
        try:
            result = rfc_jwe.decrypt_compact(token, _rfc_key(key.private_jwk, key.kid), registry=_registry(alg, enc))
        except (RfcJoseError, ValueError, TypeError, KeyError):
            continue
        if result.plaintext is None:
            continue
        return result.plaintext
    raise JoseError("jwe_decrypt_failed")


def unwrap_nested(
    token: str,
    keys: Sequence[DecryptionKey],
    *,
    algorithms: Collection[str] = JWE_ALGORITHMS,
    encryptions: Collection[str] = JWE_ENCRYPTIONS,
    max_bytes: int = DEFAULT_MAX_JWE_BYTES,
) -> str:
    """The JWS to verify: the token itself, or the JWS inside a signed-then-encrypted JWT (RFC 7519 §5.2).

    A JWE is refused without ``keys`` ("encrypted_token_without_key"); its content must be a JWS, never
    plain claims ("jwe_plain_claims") nor another JWE ("jwe_nested_twice").
    """
    if not is_jwe(token):
        return token
    if not keys:
        # Refused before any parsing: a provider without encryption_key_file never gets a JWE opened.
        raise JoseError("encrypted_token_without_key")
    header = read_jwe_header(token, algorithms=algorithms, encryptions=encryptions, max_bytes=max_bytes)
    cty = header.get("cty")
    # MIME types compare case-insensitively, and "application/" may be left off (RFC 7515 §4.1.10).
    if cty is not None and (not isinstance(cty, str) or cty.lower() not in ("jwt", "application/jwt")):
        raise JoseError("jwe_unexpected_content_type")
    plaintext = decrypt(token, keys, algorithms=algorithms, encryptions=encryptions, max_bytes=max_bytes)
    try:
        inner = plaintext.decode("ascii")
    except UnicodeDecodeError:
        inner = ""
    if inner.count(".") == 4:
        raise JoseError("jwe_nested_twice")
    # Exactly a compact JWS, nothing around it (no whitespace to strip: the content is taken as sent).
    if not _COMPACT_JWS.fullmatch(inner):
        try:
            is_claims = isinstance(strict_json.loads(plaintext), dict)
        except ValueError:
            is_claims = False
        raise JoseError("jwe_plain_claims" if is_claims else "jwe_malformed_content")
    return inner


def open_nested(
    token: str,
    decryption_keys: Sequence[DecryptionKey],
    verification_keys: Sequence[PublicKey],
    *,
    algorithms: Collection[str],
    jwe_algorithms: Collection[str] = JWE_ALGORITHMS,
    jwe_encryptions: Collection[str] = JWE_ENCRYPTIONS,
    max_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
) -> dict[str, Any]:
    """Claims of a JWS, or of a signed-then-encrypted JWT: unwrap_nested, then ``verify`` as for any JWS."""
    inner = unwrap_nested(token, decryption_keys, algorithms=jwe_algorithms, encryptions=jwe_encryptions)
    return verify(inner, verification_keys, algorithms=algorithms, max_bytes=max_bytes)


def encrypt(
    plaintext: bytes,
    recipient: EncryptionPublicKey,
    *,
    alg: str,
    enc: str,
    cty: str | None = "JWT",
) -> str:
    """A compact JWE of ``plaintext`` to ``recipient`` (request objects: RFC 9101 §6.1, cty JWT)."""
    if alg not in JWE_ALGORITHMS:
        raise JoseError("jwe_algorithm_not_allowed")
    if enc not in JWE_ENCRYPTIONS:
        raise JoseError("jwe_encryption_not_allowed")
    if not recipient.allows(alg):
        raise JoseError("no_matching_key")
    protected: dict[str, Any] = {"alg": alg, "enc": enc}
    if cty is not None:
        protected["cty"] = cty
    if recipient.kid is not None:
        protected["kid"] = recipient.kid
    try:
        token = rfc_jwe.encrypt_compact(
            protected, plaintext, _rfc_key(recipient.jwk, recipient.kid), registry=_registry(alg, enc)
        )
    except (RfcJoseError, ValueError, TypeError) as exc:
        raise JoseError("jwe_encrypt_failed") from exc
    return token
