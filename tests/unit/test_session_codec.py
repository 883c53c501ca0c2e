"""Sealed cookies: attacks.md T35 (tampered, foreign, stale cookies), purpose binding, key rotation."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.session import codec
from gateway.session.codec import Keyring, SealError

SECRET = "s" * 16 + "0123456789abcdef0123456789"
OLD_SECRET = "old-secret-old-secret-old-secret-0001"
OTHER_DEPLOYMENT = "another-deployment-secret-0123456789"
NOW = 1_700_000_000.0
PAYLOAD = {"sid": "abc", "id": {"sub": "u1", "idp": "bankid-no", "name": "Åsa"}, "exp": NOW + 3600}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw(value: str) -> bytes:
    assert value.startswith("v1.")
    return unb64(value[3:])


def pack(data: bytes) -> str:
    return "v1." + b64(data)


def derive(secret: str) -> bytes:
    """The documented derivation, written out independently of the module."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"eid-gateway", info=b"cookie-seal-v1").derive(
        secret.encode()
    )


def hand_seal(secret: str, plaintext: bytes, *, purpose: str = "session", nonce: bytes | None = None) -> str:
    key = derive(secret)
    key_id = hashlib.sha256(key).digest()[:4]
    nonce = os.urandom(12) if nonce is None else nonce
    return pack(key_id + nonce + AESGCM(key).encrypt(nonce, plaintext, purpose.encode()))


def reason(keyring: Keyring, value: str, *, purpose: str = "session", now: float = NOW) -> str:
    with pytest.raises(SealError) as info:
        keyring.unseal(value, purpose=purpose, now=now)
    return info.value.reason


KEYRING = Keyring([SECRET])
SEALED = KEYRING.seal(PAYLOAD, purpose="session")


def test_round_trip() -> None:
    assert SEALED.startswith("v1.")
    assert KEYRING.unseal(SEALED, purpose="session", now=NOW) == PAYLOAD


def test_format_is_key_id_nonce_ciphertext() -> None:
    """Format: v1. + base64url(key_id[4] || nonce[12] || ciphertext || tag[16]), as documented."""
    data = raw(SEALED)
    plaintext = json.dumps(PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(data) == 4 + 12 + len(plaintext) + 16
    key = derive(SECRET)
    assert data[:4] == hashlib.sha256(key).digest()[:4]
    assert AESGCM(key).decrypt(data[4:16], data[16:], b"session") == plaintext


def test_hand_sealed_value_with_the_documented_format_unseals() -> None:
    value = hand_seal(SECRET, json.dumps(PAYLOAD).encode())
    assert KEYRING.unseal(value, purpose="session", now=NOW) == PAYLOAD


def test_same_payload_sealed_twice_differs() -> None:
    values = [KEYRING.seal(PAYLOAD, purpose="session") for _ in range(200)]
    assert len(set(values)) == 200
    nonces = {raw(v)[4:16] for v in values}
    assert len(nonces) == 200
    assert b"\x00" * 12 not in nonces


def test_plaintext_is_not_visible() -> None:
    assert b"u1" not in raw(SEALED) and "Åsa".encode() not in raw(SEALED)


# --- T35 ---------------------------------------------------------------------------------------------


def _flip(value: str, index: int) -> str:
    data = bytearray(raw(value))
    data[index] ^= 0x80
    return pack(bytes(data))


def _zero_nonce(value: str) -> str:
    data = raw(value)
    return pack(data[:4] + b"\x00" * 12 + data[16:])


def _other_deployment_with_our_key_id(value: str) -> str:
    """Encrypted by hand with a zero nonce and the attacker's own key, labelled with our key id."""
    ours = raw(value)[:4]
    forged = raw(hand_seal(OTHER_DEPLOYMENT, json.dumps(PAYLOAD).encode(), nonce=b"\x00" * 12))
    return pack(ours + forged[4:])


def _truncated_raw(value: str) -> str:
    data = raw(value)
    return pack(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(_flip(SEALED, 20), "tampered", id="ciphertext-byte-flipped"),
        pytest.param(_flip(SEALED, len(raw(SEALED)) - 1), "tampered", id="tag-byte-flipped"),
        pytest.param(_flip(SEALED, 5), "tampered", id="nonce-byte-flipped"),
        pytest.param(_flip(SEALED, 0), "unknown_key", id="key-id-byte-flipped"),
        pytest.param(_zero_nonce(SEALED), "tampered", id="nonce-zeroed"),
        pytest.param(_other_deployment_with_our_key_id(SEALED), "tampered", id="re-encrypted-zero-nonce"),
        pytest.param(_truncated_raw(SEALED), "tampered", id="truncated-half-bytes"),
        pytest.param(pack(raw(SEALED)[:-1]), "tampered", id="truncated-one-byte"),
        pytest.param(pack(raw(SEALED) + b"\x00"), "tampered", id="extended-one-byte"),
        pytest.param(pack(raw(SEALED)[:31]), "malformed", id="shorter-than-header-and-tag"),
        pytest.param(pack(raw(SEALED)[:32]), "tampered", id="header-and-tag-only"),
        pytest.param("AAAA", "malformed", id="AAAA"),
        pytest.param("=", "malformed", id="equals"),
        pytest.param("", "malformed", id="empty"),
        pytest.param("v1.", "malformed", id="prefix-only"),
        pytest.param("v1.AAAA", "malformed", id="v1-AAAA"),
        pytest.param("v1.=", "malformed", id="v1-equals"),
        pytest.param("v2." + SEALED[3:], "malformed", id="other-version"),
        pytest.param(SEALED[3:], "malformed", id="no-prefix"),
        pytest.param(SEALED + "=", "malformed", id="padded"),
        pytest.param(SEALED[:-4] + "+/" + SEALED[-2:], "malformed", id="plus-slash"),
        pytest.param(SEALED[: len(SEALED) // 2], None, id="truncated-half-text"),
        pytest.param(
            Keyring([OTHER_DEPLOYMENT]).seal(PAYLOAD, purpose="session"), "unknown_key", id="other-deployment"
        ),
    ],
)
def test_t35_refused(value: str, expected: str | None) -> None:
    got = reason(KEYRING, value)
    if expected is None:  # text truncation lands on "tampered" or "malformed" depending on the length mod 4
        assert got in {"tampered", "malformed"}
    else:
        assert got == expected


def test_t35_trailing_newline_with_aligned_length_refused() -> None:
    """'$' in the segment regex also matches before a final newline; the value must still be refused."""
    for size in range(8):
        value = KEYRING.seal({**PAYLOAD, "r": "x" * size}, purpose="session")
        if len(value[3:]) % 4 == 0:
            break
    else:
        raise AssertionError("no value of the right length")
    assert reason(KEYRING, value + "\n") == "malformed"


def test_t35_expired() -> None:
    value = KEYRING.seal({**PAYLOAD, "exp": NOW}, purpose="session")
    assert reason(KEYRING, value, now=NOW) == "expired"
    assert reason(KEYRING, value, now=NOW + 1) == "expired"
    assert KEYRING.unseal(value, purpose="session", now=NOW - 0.001)["exp"] == NOW


@pytest.mark.parametrize(
    "payload",
    [
        {"sid": "abc"},
        {"sid": "abc", "exp": None},
        {"sid": "abc", "exp": str(NOW + 3600)},
        {"sid": "abc", "exp": True},
        {"sid": "abc", "exp": [NOW + 3600]},
    ],
)
def test_expiry_is_required_inside_the_payload(payload: dict[str, Any]) -> None:
    assert reason(KEYRING, KEYRING.seal(payload, purpose="session")) == "malformed"


@pytest.mark.parametrize("plaintext", [b"[1, 2]", b'"text"', b"not json", b"\xff\xfe", b""])
def test_authentic_but_malformed_plaintext(plaintext: bytes) -> None:
    assert reason(KEYRING, hand_seal(SECRET, plaintext)) == "malformed"


# --- purpose binding ---------------------------------------------------------------------------------


def test_login_cookie_does_not_unseal_as_session() -> None:
    login = KEYRING.seal({"pending": [], "exp": NOW + 600}, purpose="login")
    assert reason(KEYRING, login, purpose="session") == "tampered"
    assert KEYRING.unseal(login, purpose="login", now=NOW)["pending"] == []
    assert reason(KEYRING, SEALED, purpose="login") == "tampered"


# --- key rotation ------------------------------------------------------------------------------------


def test_rotation_old_secret_still_unseals_but_new_one_seals() -> None:
    old = Keyring([OLD_SECRET])
    old_value = old.seal(PAYLOAD, purpose="session")
    rotated = Keyring([SECRET, OLD_SECRET])
    assert rotated.unseal(old_value, purpose="session", now=NOW) == PAYLOAD
    new_value = rotated.seal(PAYLOAD, purpose="session")
    assert raw(new_value)[:4] == raw(SEALED)[:4] != raw(old_value)[:4]
    assert KEYRING.unseal(new_value, purpose="session", now=NOW) == PAYLOAD
    assert reason(old, new_value) == "unknown_key"
    # Once the old secret is dropped, its cookies stop working.
    assert reason(KEYRING, old_value) == "unknown_key"


def test_keyring_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        Keyring([])


def test_key_derivation_is_deterministic_per_secret() -> None:
    assert Keyring([SECRET]).unseal(SEALED, purpose="session", now=NOW) == PAYLOAD


# --- size cap ----------------------------------------------------------------------------------------


def test_over_long_value_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(segment: str) -> bytes:
        raise AssertionError("decoded an over-long value")

    monkeypatch.setattr(codec, "b64url_decode", boom)
    for value in ("v1." + "A" * codec.MAX_SEALED_LENGTH, "v1." + "A" * 1_000_000):
        assert reason(KEYRING, value) == "malformed"


def test_length_cap_boundary() -> None:
    assert codec.MAX_SEALED_LENGTH == 4000
    # Below the cap a value is decoded (and refused for its content, not its length) ...
    below = "v1." + "A" * 3996
    assert len(below) == codec.MAX_SEALED_LENGTH - 1
    assert reason(KEYRING, below) == "unknown_key"
    # ... above it, it is refused whatever it holds (3998 characters would be valid base64url).
    assert reason(KEYRING, "v1." + "A" * 3998) == "malformed"


def test_large_payload_that_fits_round_trips() -> None:
    payload = {**PAYLOAD, "pad": "x" * 2500}
    value = KEYRING.seal(payload, purpose="session")
    assert len(value) <= codec.MAX_SEALED_LENGTH
    assert KEYRING.unseal(value, purpose="session", now=NOW) == payload
