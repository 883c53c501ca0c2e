"""The shared session store on Redis (``session.store: redis://...``).

The cookie is ``r1.`` + base64url(id[32] || key[32]). Redis holds, under prefix + ``s:`` + SHA-256(id), the
session encrypted with AES-256-GCM under that per-session key (the record key is the associated data), so
a copy of Redis alone reveals no identity, and a copy of the cookie alone is worthless once the record is
deleted (logout, attacks.md T39). Idle expiry is the record's TTL; it is extended at most once a minute
(a tenth of the idle window when shorter), never past the absolute end, so reads do not write.

Per-person and per-provider-session index sets (keyed by an HMAC of the provider's subject / session id
under a key derived from the session secret, so they hold no national ID numbers either) let "log out
everywhere" and back-channel logout find the records to delete.

Every Redis failure raises StoreUnavailableError: the request fails closed with a 503 page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis import asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.protocol import strict_json
from gateway.protocol.jws import JoseError, b64url_decode, b64url_encode
from gateway.session.model import Session
from gateway.session.store import Loaded, StoreUnavailableError
from gateway.session.store_url import StoreAddress

COOKIE_PREFIX = "r1."
_ID = 32
_KEY = 32
_NONCE = 12
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
T = TypeVar("T")


def connect(address: StoreAddress, *, timeout: float) -> Any:
    """A redis-py asyncio client for the address (plain, Sentinel-managed master, or Cluster)."""
    # One immediate retry picks up a fresh connection after Redis restarted; no backoff, so that an
    # outage fails the request within the timeout instead of after redis-py's default retries.
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
    }
    if address.kind == "redis":
        return aioredis.Redis.from_url(address.url, health_check_interval=30, **common)
    credentials: dict[str, Any] = {"username": address.username, "password": address.password, "ssl": address.tls}
    if address.kind == "sentinel":
        sentinel = Sentinel(
            list(address.hosts), sentinel_kwargs={**common, **credentials}, **common
        )
        return sentinel.master_for(address.service, db=address.db, **credentials)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.hosts],
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        **credentials,
    )


def _derive(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"eid-gateway", info=info).derive(secret.encode())


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore:
    name = "redis"

    def __init__(
        self,
        client: Any,
        *,
        secrets_: Sequence[str],
        prefix: str,
        idle_timeout: float,
        lifetime: float,
        on_result: Callable[[str, bool], None] = lambda _op, _ok: None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._idle = idle_timeout
        self._lifetime = lifetime
        # The first key writes index entries; every key is searched, so a rolled secret still finds them.
        self._index_keys = tuple(_derive(s, b"redis-index-v1") for s in secrets_)
        self._on_result = on_result
        self._decrypted: dict[bytes, Session] = {}

    # -- keys ---------------------------------------------------------------------------------------
    def _record_key(self, session_id: bytes) -> str:
        return self._prefix + "s:" + hashlib.sha256(session_id).hexdigest()

    def _index(self, kind: str, provider: str, value: str, key: bytes) -> str:
        digest = hmac.new(key, f"{provider}\0{value}".encode(), hashlib.sha256).hexdigest()
        return f"{self._prefix}{kind}:{digest}"

    def _indexes(self, session: Session) -> list[str]:
        key = self._index_keys[0]
        found = [self._index("u", session.identity.idp, session.identity.sub, key)]
        if session.provider_sid is not None:
            found.append(self._index("o", session.identity.idp, session.provider_sid, key))
        return found

    def _marker_key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:" + hashlib.sha256(name.encode()).hexdigest()

    # -- plumbing -----------------------------------------------------------------------------------
    async def _call(self, operation: str, action: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await action()
        except (RedisError, OSError, TimeoutError) as exc:
            self._on_result(operation, False)
            raise StoreUnavailableError(f"redis_{operation}") from exc
        self._on_result(operation, True)
        return result

    @staticmethod
    def _parse_cookie(cookie: str) -> tuple[bytes, bytes] | None:
        if not cookie.startswith(COOKIE_PREFIX) or len(cookie) > 200:
            return None
        try:
            raw = b64url_decode(cookie[len(COOKIE_PREFIX) :])
        except JoseError:
            return None
        if len(raw) != _ID + _KEY:
            return None
        return raw[:_ID], raw[_ID:]

    # -- sessions -----------------------------------------------------------------------------------
    async def load(self, cookie: str, now: float) -> Loaded:
        parsed = self._parse_cookie(cookie)
        if parsed is None:
            return Loaded(None, "malformed")
        session_id, key = parsed
        record_key = self._record_key(session_id)

        async def read() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(record_key)
            pipe.pttl(record_key)
            result: list[Any] = await pipe.execute()
            return result

        value, pttl = await self._call("read", read)
        if value is None:
            return Loaded(None, "not_found")  # logged out, expired, or never issued
        # Keyed by key and ciphertext: a cookie with the right id but another key must still fail to decrypt.
        cache_key = key + value
        session = self._decrypted.get(cache_key)
        if session is None:
            try:
                plaintext = AESGCM(key).decrypt(value[:_NONCE], value[_NONCE:], record_key.encode())
                session = Session.from_payload(strict_json.loads(plaintext))
            except (InvalidTag, ValueError):
                return Loaded(None, "tampered")
            if len(self._decrypted) >= 10_000:
                self._decrypted.clear()
            self._decrypted[cache_key] = session
        if now >= session.expires:
            return Loaded(None, "expired")
        idle_left = pttl / 1000 if isinstance(pttl, int) and pttl > 0 else 0.0
        session = replace(session, last_seen=now - max(0.0, self._idle - idle_left), handle=cookie)
        extend_to = min(self._idle, session.expires - now)
        if extend_to - idle_left > min(60.0, self._idle / 10):
            await self._call("touch", lambda: self._redis.pexpire(record_key, _ms(extend_to)))
        return Loaded(session)

    async def save(self, session: Session, now: float) -> str:
        parsed = self._parse_cookie(session.handle) if session.handle else None
        session_id, key = parsed if parsed else (os.urandom(_ID), os.urandom(_KEY))
        record_key = self._record_key(session_id)
        plaintext = json.dumps(session.to_payload(), separators=(",", ":"), ensure_ascii=False).encode()
        nonce = os.urandom(_NONCE)
        value = nonce + AESGCM(key).encrypt(nonce, plaintext, record_key.encode())
        ttl = _ms(min(self._idle, session.expires - now))

        async def write() -> None:
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(record_key, value, px=ttl)
            for index in self._indexes(session):
                pipe.sadd(index, record_key)
                pipe.pexpire(index, _ms(self._lifetime))
            await pipe.execute()

        await self._call("write", write)
        return COOKIE_PREFIX + b64url_encode(session_id + key)

    def cookie_max_age(self, session: Session, now: float) -> int:
        return max(1, int(session.expires - now))  # idle expiry is the record's TTL, not the cookie's

    async def end(self, session: Session, now: float) -> None:
        parsed = self._parse_cookie(session.handle) if session.handle else None
        if parsed is None:
            return
        record_key = self._record_key(parsed[0])

        async def delete() -> None:
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(record_key)
            for index in self._indexes(session):
                pipe.srem(index, record_key)
            await pipe.execute()

        await self._call("delete", delete)

    async def _end_indexed(self, kind: str, provider: str, value: str) -> int:
        indexes = [self._index(kind, provider, value, key) for key in self._index_keys]

        async def delete() -> int:
            ended = 0
            for index in indexes:
                members = await self._redis.smembers(index)
                for member in members:
                    ended += int(await self._redis.delete(member))
                await self._redis.delete(index)
            return ended

        return await self._call("delete", delete)

    async def end_for_subject(self, provider: str, sub: str, now: float) -> int:
        return await self._end_indexed("u", provider, sub)

    async def end_for_provider_session(self, provider: str, provider_sid: str, now: float) -> int:
        return await self._end_indexed("o", provider, provider_sid)

    # -- single use and locks -------------------------------------------------------------------------
    async def is_spent(self, marker: str, now: float) -> bool:
        key = self._marker_key("x", marker)
        return bool(await self._call("read", lambda: self._redis.exists(key)))

    async def spend(self, marker: str, expires: float, now: float) -> bool:
        key = self._marker_key("x", marker)
        return bool(await self._call("write", lambda: self._redis.set(key, b"1", nx=True, px=_ms(expires - now))))

    async def lock(self, name: str, ttl: float) -> str | None:
        key, token = self._marker_key("l", name), secrets.token_urlsafe(16)
        taken = await self._call("lock", lambda: self._redis.set(key, token, nx=True, px=_ms(ttl)))
        return token if taken else None

    async def unlock(self, name: str, token: str) -> None:
        key = self._marker_key("l", name)
        await self._call("lock", lambda: self._redis.eval(_UNLOCK, 1, key, token))

    async def healthy(self) -> bool:
        try:
            await self._call("ping", lambda: self._redis.ping())
        except StoreUnavailableError:
            return False
        return True

    async def close(self) -> None:
        await self._redis.aclose()
