"""What only the Redis store has: the record in Redis (encrypted, prefixed, expiring) and the cookie's
per-session key (an id with another key is refused)."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.protocol.jws import b64url_decode, b64url_encode
from tests.store.support import ASA, IDLE_TIMEOUT, PREFIX, Replicas, login, record_key, request

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_redis_record_is_encrypted_prefixed_and_expires_within_the_idle_timeout(redis_pair: Replicas) -> None:
    assert redis_pair.redis is not None
    browser = await login(redis_pair, ASA)
    assert await browser.works(redis_pair.b.url)
    key = record_key(browser.cookie)
    everything = redis_pair.redis.everything()
    assert key in everything
    assert all(k.startswith(PREFIX.encode()) for k in everything), sorted(everything)

    sub = f"dev-{hashlib.sha256(f'{ASA.country}:{ASA.ssn}'.encode()).hexdigest()[:32]}"
    secrets_ = set()
    for value in (ASA.ssn, ASA.name, ASA.given_name, ASA.family_name, ASA.birthdate, sub, browser.cookie):
        secrets_ |= {value.encode(), value.encode("unicode_escape"), value.encode("ascii", "xmlcharrefreplace")}
    secrets_.add(browser.cookie[3:].encode())
    for k, (_kind, values, _ttl) in everything.items():
        for blob in (k, *values):
            found = [s for s in secrets_ if s in blob]
            assert not found, f"{k!r} holds {found!r} in clear"

    kind, values, ttl = everything[key]
    assert kind == b"string" and len(values) == 1
    # The record is nonce || AES-256-GCM ciphertext under the cookie's key half, bound to its Redis key; its
    # first byte is random, so "does not start with {" would fail one run in 256.
    raw = b64url_decode(browser.cookie[3:])
    plaintext = AESGCM(raw[32:]).decrypt(values[0][:12], values[0][12:], key)
    assert json.loads(plaintext)["sid"] and ASA.ssn.encode() in plaintext
    with pytest.raises(InvalidTag):
        AESGCM(raw[32:]).decrypt(values[0][:12], values[0][12:], key + b"x")
    assert 0 < ttl <= IDLE_TIMEOUT * 1000, f"record TTL {ttl} ms > idle timeout"
    # Every session record expires within the idle timeout; nothing is kept forever.
    for k, (_kind, _values, pttl) in everything.items():
        assert pttl > 0, f"{k!r} has no expiry"
        if k.startswith((PREFIX + "s:").encode()):
            assert pttl <= IDLE_TIMEOUT * 1000, (k, pttl)


async def test_redis_cookie_with_the_right_id_and_a_wrong_key_is_refused(redis_pair: Replicas) -> None:
    """The cookie is id || key; the record is AES-GCM under that key. Half a cookie (the id with any other
    key) must be refused by every replica, also by one that has already decrypted the record once."""
    browser = await login(redis_pair, ASA)  # replica A decrypted the record while finishing the login
    raw = b64url_decode(browser.cookie[3:])
    forged = "r1." + b64url_encode(raw[:32] + bytes(32))
    fresh = await request(redis_pair.b.url, "/api/forged", cookie=forged)  # B has never seen this session
    assert fresh.status == 401, f"replica B: {fresh.status}: {fresh.text}"
    assert await browser.works(redis_pair.b.url)  # now B has decrypted it too
    for gw in redis_pair.both:
        answer = await request(gw.url, "/api/forged", cookie=forged)
        assert answer.status == 401, f"{gw.url} accepted a cookie with a wrong key: {answer.status} {answer.text}"
