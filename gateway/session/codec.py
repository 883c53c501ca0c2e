"""Sealed cookies (pure layer): AES-256-GCM with a random nonce, expiry inside the authenticated plaintext.

Format: ``v1.`` + base64url(key_id[4] || nonce[12] || ciphertext||tag). The associated data binds a
sealed value to its purpose ("session", "login"), so one kind of cookie can never be replayed as
another. Keys are derived from the configured secrets with HKDF; the first secret seals, every
secret unseals, so a new secret can be rolled in while old cookies stay readable (read-only).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.protocol import strict_json
from gateway.protocol.jws import JoseError, b64url_decode, b64url_encode

PREFIX = "v1."
#: Browsers keep about 4 KiB per cookie; anything longer was not written by us.
MAX_SEALED_LENGTH = 4000
_NONCE = 12
_KEY_ID = 4


class SealError(ValueError):
    """A sealed value was refused; ``reason`` is safe for logs and metric labels."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Key:
    key_id: bytes
    aead: AESGCM


class Keyring:
    """Derived cookie keys; seals with the first, unseals with any."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("at least one secret is required")
        self._keys = tuple(self._derive(s) for s in secrets)

    @staticmethod
    def _derive(secret: str) -> _Key:
        material = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"eid-gateway", info=b"cookie-seal-v1").derive(
            secret.encode("utf-8")
        )
        return _Key(key_id=hashlib.sha256(material).digest()[:_KEY_ID], aead=AESGCM(material))

    def seal(self, payload: Mapping[str, Any], *, purpose: str) -> str:
        key = self._keys[0]
        nonce = os.urandom(_NONCE)
        plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        sealed = key.aead.encrypt(nonce, plaintext, purpose.encode())
        return PREFIX + b64url_encode(key.key_id + nonce + sealed)

    def unseal(self, value: str, *, purpose: str, now: float) -> dict[str, Any]:
        """Return the payload; refuse anything tampered, foreign, expired or malformed.

        The payload must carry ``exp`` (seconds since the epoch); it is checked here so that no
        caller can forget it.
        """
        if not value.startswith(PREFIX) or len(value) > MAX_SEALED_LENGTH:
            raise SealError("malformed")
        try:
            raw = b64url_decode(value[len(PREFIX) :])
        except JoseError as exc:
            raise SealError("malformed") from exc
        if len(raw) < _KEY_ID + _NONCE + 16:
            raise SealError("malformed")
        key_id, nonce, sealed = raw[:_KEY_ID], raw[_KEY_ID : _KEY_ID + _NONCE], raw[_KEY_ID + _NONCE :]
        key = next((k for k in self._keys if k.key_id == key_id), None)
        if key is None:
            raise SealError("unknown_key")
        try:
            plaintext = key.aead.decrypt(nonce, sealed, purpose.encode())
        except InvalidTag as exc:
            raise SealError("tampered") from exc
        try:
            payload = strict_json.loads(plaintext)
        except ValueError as exc:
            raise SealError("malformed") from exc
        if not isinstance(payload, dict):
            raise SealError("malformed")
        exp = payload.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise SealError("malformed")
        if now >= exp:
            raise SealError("expired")
        return payload
