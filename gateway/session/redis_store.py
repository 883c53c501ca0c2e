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

Failover (issue 15, item 4). Writes that must survive a failover of the primary -- logout, log out
everywhere, back-channel logout and the single-use markers (``spend``) -- are durable: the write, ``ROLE``
and, when the primary has a replica (or lost its last one less than ``REPLICA_MEMORY`` seconds ago),
``WAIT 1 <half the store timeout>`` go out on one connection. No acknowledgement in time means the write
may be undone by a failover, so it is not confirmed: UnconfirmedWriteError (a StoreUnavailableError, 503;
"try again"), never a "logged out" that a failover can take back. Logins (``save``) do not wait: a lost
login costs one new login, and its state marker, spent just before, did wait.

With Sentinel the store also notices a role change at once: it subscribes to ``+switch-master`` on every
Sentinel and, on a switch, points the pool at the new primary and drops the pooled connections to the old
one (which keeps accepting writes for about 10 s until Sentinel demotes it, then discards them); every new
connection checks with ``ROLE`` that it reached a primary; a ``READONLY`` answer (a demoted primary) drops
the pooled connections and the operation is tried once more. What Redis must be set to for this is in
docs/sessions.md (``min-replicas-to-write 1``, ``min-replicas-max-lag`` under ``REPLICA_MEMORY``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis import asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError

from gateway import logs
from gateway.protocol import strict_json
from gateway.protocol.jws import JoseError, b64url_decode, b64url_encode
from gateway.protocol.pairwise import person_key
from gateway.session.model import Session
from gateway.session.store import Loaded, SessionInfo, StoreUnavailableError, UnconfirmedWriteError
from gateway.session.store_url import StoreAddress

COOKIE_PREFIX = "r1."
_ID = 32
_KEY = 32
_NONCE = 12
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
# One round trip: the counter and, on its first hit, its expiry (the end of the window, plus a second).
_COUNT_HIT = (
    "local n = redis.call('incr', KEYS[1]) if n == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end return n"
)
#: After a primary's last replica went away (as it does when Sentinel promotes that replica), durable writes
#: still need a replica's acknowledgement for this long: such a primary may be the old one of a failover, or
#: cut off from the rest. Past it, ``min-replicas-to-write`` on the primary is what refuses writes.
REPLICA_MEMORY = 30.0
SWITCH_CHANNEL = "+switch-master"
T = TypeVar("T")
log = logging.getLogger(__name__)


async def _require_primary(connection: SentinelManagedConnection, address: tuple[str, int]) -> None:
    """Sentinel's answer may be a moment old: a connection that reached a replica is not used."""
    await connection.send_command("ROLE", check_health=False)
    reply = await connection.read_response()
    role = reply[0] if isinstance(reply, list) and reply else None
    if role not in (b"master", "master"):
        await connection.disconnect()
        raise RedisConnectionError(f"{address[0]}:{address[1]} is not a primary")


class PrimaryConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that checks the role of what it reached, after every (re)connect."""

    async def connect_to(self, address: tuple[str, int]) -> None:
        await super().connect_to(address)  # type: ignore[no-untyped-call]
        if self.connection_pool.is_master:
            await _require_primary(self, address)


class PrimarySSLConnection(SentinelManagedSSLConnection):
    async def connect_to(self, address: tuple[str, int]) -> None:
        await super().connect_to(address)  # type: ignore[no-untyped-call]
        if self.connection_pool.is_master:
            await _require_primary(self, address)


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
        connection_class = PrimarySSLConnection if address.tls else PrimaryConnection
        return sentinel.master_for(address.service, db=address.db, connection_class=connection_class, **credentials)
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


@dataclass
class _Replicas:
    """What the last ROLE of one primary said: its connected replicas, and since when it has none."""

    count: int
    none_since: float | None = None  # monotonic; set when a primary seen with replicas is seen without

    def needed(self, now: float) -> int:
        if self.count > 0 or (self.none_since is not None and now - self.none_since < REPLICA_MEMORY):
            return 1
        return 0


def _where(connection: Any) -> tuple[Any, ...]:
    return (getattr(connection, "host", None), getattr(connection, "port", None), getattr(connection, "path", None))


def _role(reply: Any) -> tuple[bool, int]:
    """(is a primary, replicas that can acknowledge) from a ROLE reply: ``master``, offset, and per replica
    ip, port and the offset it acknowledged. One that has acknowledged nothing yet (it is still joining:
    Redis sends it the stream only after its first REPLCONF ACK, up to a second later) cannot answer a WAIT."""
    if not isinstance(reply, list) or not reply or reply[0] not in (b"master", "master"):
        return False, 0
    replicas = reply[2] if len(reply) > 2 and isinstance(reply[2], list) else []
    return True, sum(1 for r in replicas if isinstance(r, list) and len(r) > 2 and int(r[2]) > 0)


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
        wait_timeout: float | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._idle = idle_timeout
        self._lifetime = lifetime
        # The first key writes index entries; every key is searched, so a rolled secret still finds them.
        self._index_keys = tuple(_derive(s, b"redis-index-v1") for s in secrets_)
        self._on_result = on_result
        self._decrypted: dict[bytes, Session] = {}
        # Durable writes need one connection for the write and its WAIT: a pool (not Redis Cluster).
        pool = getattr(client, "connection_pool", None)
        self._pool: ConnectionPool | None = pool if isinstance(pool, ConnectionPool) else None
        self._sentinel_pool = pool if isinstance(pool, SentinelConnectionPool) else None
        if wait_timeout is None:  # half the store timeout: the answer comes before the socket gives up
            socket_timeout = self._pool.connection_kwargs.get("socket_timeout") if self._pool else None
            wait_timeout = (socket_timeout or 1.0) / 2
        self._wait_ms = _ms(wait_timeout)
        self._replicas: dict[tuple[Any, ...], _Replicas] = {}
        self._watchers: list[asyncio.Task[None]] | None = None
        self.switches_followed = 0  # +switch-master announcements that moved the pool (tests, logs)

    # -- keys ---------------------------------------------------------------------------------------
    def _record_key(self, session_id: bytes) -> str:
        return self._prefix + "s:" + hashlib.sha256(session_id).hexdigest()

    def _index(self, kind: str, provider: str, value: str, key: bytes) -> str:
        digest = hmac.new(key, f"{provider}\0{value}".encode(), hashlib.sha256).hexdigest()
        return f"{self._prefix}{kind}:{digest}"

    def _indexes(self, session: Session) -> list[str]:
        key = self._index_keys[0]
        found = [
            self._index("u", session.identity.idp, session.identity.sub, key),
            self._index("p", "", person_key(session.identity), key),  # session administration, any provider
        ]
        if session.provider_sid is not None:
            found.append(self._index("o", session.identity.idp, session.provider_sid, key))
        return found

    def _meta_key(self, record_key: str) -> str:
        """What session administration may read of a record without its cookie: provider, acr, times."""
        return self._prefix + "m:" + record_key[len(self._prefix) + 2 :]

    def _marker_key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:" + hashlib.sha256(name.encode()).hexdigest()

    # -- plumbing -----------------------------------------------------------------------------------
    async def _call(self, operation: str, action: Callable[[], Awaitable[T]]) -> T:
        self._watch_switches()
        try:
            try:
                result = await action()
            except ReadOnlyError:
                # A demoted primary (redis:// behind a name that moved, or a Sentinel answer that was old):
                # drop every pooled connection, so that the next ones resolve the primary again; once more.
                await self._drop_connections()
                result = await action()
        except StoreUnavailableError:
            self._on_result(operation, False)
            raise
        except (RedisError, OSError, TimeoutError) as exc:
            self._on_result(operation, False)
            raise StoreUnavailableError(f"redis_{operation}") from exc
        self._on_result(operation, True)
        return result

    async def _drop_connections(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect(inuse_connections=False)
            await self._pool.update_active_connections_for_reconnect()  # type: ignore[no-untyped-call]  # in use: on return

    async def _durable(self, operation: str, queue: Callable[[Any], None]) -> list[Any]:
        """Run the writes ``queue`` adds to a pipeline so that a failover cannot undo them; their replies.

        One round trip on one connection: the writes, ``ROLE`` (what that server is and how many replicas
        it has now) and, when it has or recently had a replica, ``WAIT 1`` (which counts the writes of its
        own connection). No acknowledgement in time: UnconfirmedWriteError, unless Sentinel names another
        primary by now, which is then written to once more. Every durable write is idempotent."""
        if self._pool is None:  # Redis Cluster: no WAIT here (docs/limitations.md)
            pipe = self._redis.pipeline(transaction=False)
            queue(pipe)
            return list(await pipe.execute())
        for _attempt in range(2):
            connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            known = self._replicas.get(_where(connection))
            needed = known.needed(time.monotonic()) if known else 0
            pipe = self._redis.pipeline(transaction=False)
            pipe.connection = connection  # released by the pipeline when it is done
            queue(pipe)
            writes = len(pipe.command_stack)
            pipe.execute_command("ROLE")
            if needed:
                pipe.execute_command("WAIT", needed, self._wait_ms)
            replies = list(await pipe.execute())
            where = _where(connection)  # a retried pipeline may have reconnected to another server
            is_primary, count = _role(replies[writes])
            if is_primary:
                now_needed = self._observe(where, count)
                if needed and int(replies[writes + 1]) >= needed:
                    return replies[:writes]
                if not needed and not now_needed:
                    return replies[:writes]
                if not needed or not now_needed:
                    # It has a replica we did not know of (wait for it), or it lost its last one long ago
                    # and the count we had was old (no one to wait for): once more, knowing it.
                    continue
            if not await self._primary_moved(where):
                break
        raise UnconfirmedWriteError(f"redis_{operation}_unconfirmed")

    def _observe(self, where: tuple[Any, ...], count: int) -> int:
        now = time.monotonic()
        known = self._replicas.get(where)
        if known is None:
            if len(self._replicas) > 64:
                self._replicas.clear()
            known = self._replicas[where] = _Replicas(count)
        elif count == 0 and known.count > 0:
            known.count, known.none_since = 0, now
        elif count > 0:
            known.count, known.none_since = count, None
        return known.needed(now)

    async def _primary_moved(self, where: tuple[Any, ...]) -> bool:
        """After a WAIT that timed out: does Sentinel name another primary by now?"""
        if self._sentinel_pool is None:
            return False
        with contextlib.suppress(RedisError, OSError):
            host, port = await self._sentinel_pool.get_master_address()  # type: ignore[no-untyped-call]
            return (host, port) != where[:2]
        return False

    # -- Sentinel: follow +switch-master --------------------------------------------------------------
    def _watch_switches(self) -> None:
        if self._watchers is not None or self._sentinel_pool is None:
            return
        manager = self._sentinel_pool.sentinel_manager
        self._watchers = [asyncio.create_task(self._watch(s)) for s in list(manager.sentinels)]

    async def _watch(self, sentinel: Any) -> None:
        """Subscribed to one Sentinel's +switch-master for good; subscribes again after any failure."""
        kwargs = dict(sentinel.connection_pool.connection_kwargs)
        kwargs.update(socket_timeout=None, retry=Retry(NoBackoff(), 0))  # a subscriber waits; the loop retries
        client = aioredis.Redis.from_pool(
            ConnectionPool(connection_class=sentinel.connection_pool.connection_class, **kwargs)
        )
        try:
            while True:
                with contextlib.suppress(RedisError, OSError):
                    await self._listen(client, sentinel)
                await asyncio.sleep(1.0)
        finally:
            await client.aclose()

    async def _listen(self, client: Any, sentinel: Any) -> None:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(SWITCH_CHANNEL)
            heard = time.monotonic()
            pinged = heard
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    if message.get("type") == "message":
                        await self._switched(sentinel, message.get("data"))
                elif now - heard > 15:  # not even the PONGs: a Sentinel gone without closing the socket
                    raise RedisConnectionError("the Sentinel stopped answering")
                elif now - pinged > 5:
                    pinged = now
                    await pubsub.ping()

    async def _switched(self, sentinel: Any, data: Any) -> None:
        """``<service> <old ip> <old port> <new ip> <new port>``: this Sentinel now names the new primary."""
        pool = self._sentinel_pool
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        parts = text.split()
        if pool is None or len(parts) != 5 or parts[0] != pool.service_name or not parts[4].isdigit():
            return
        address = (parts[3], int(parts[4]))
        # Ask this Sentinel first from now on (others may still name the old primary for a moment), as
        # redis-py's discover_master does with the first Sentinel that answers.
        manager = pool.sentinel_manager
        if sentinel in manager.sentinels:
            manager.sentinels.remove(sentinel)
            manager.sentinels.insert(0, sentinel)
        if pool.master_address == address:
            return
        pool.master_address = address
        self.switches_followed += 1
        await self._drop_connections()
        logs.event(
            "session_store_primary_switched",
            logging.WARNING,
            old=f"{parts[1]}:{parts[2]}",
            new=f"{parts[3]}:{parts[4]}",
        )

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

        meta = json.dumps(
            {"provider": session.identity.idp, "acr": session.identity.get("acr"), "created": session.created,
             "expires": session.expires},
            separators=(",", ":"),
        )

        async def write() -> None:
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(record_key, value, px=ttl)
            pipe.set(self._meta_key(record_key), meta, px=_ms(max(1.0, session.expires - now)))
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
        indexes = self._indexes(session)

        def queue(pipe: Any) -> None:
            pipe.delete(record_key)
            pipe.delete(self._meta_key(record_key))
            for index in indexes:
                pipe.srem(index, record_key)

        await self._call("delete", lambda: self._durable("delete", queue))

    async def _indexed_records(self, kind: str, provider: str, value: str) -> tuple[list[str], list[str]]:
        """The index keys of one entry (under every secret's index key) and the record keys they hold."""
        indexes = [self._index(kind, provider, value, key) for key in self._index_keys]

        async def members() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for index in indexes:
                pipe.smembers(index)
            found: list[Any] = await pipe.execute()
            return found

        found = await self._call("read", members)
        return indexes, sorted({m.decode() if isinstance(m, bytes) else str(m) for each in found for m in each})

    async def _end_indexed(self, kind: str, provider: str, value: str) -> int:
        indexes, records = await self._indexed_records(kind, provider, value)

        def queue(pipe: Any) -> None:
            for record in records:
                pipe.delete(record)
            for index in indexes:
                pipe.delete(index)
            for record in records:
                pipe.delete(self._meta_key(record))

        replies = await self._call("delete", lambda: self._durable("delete", queue))
        return sum(int(r) for r in replies[: len(records)])

    async def end_for_subject(self, provider: str, sub: str, now: float) -> int:
        return await self._end_indexed("u", provider, sub)

    async def end_for_provider_session(self, provider: str, provider_sid: str, now: float) -> int:
        return await self._end_indexed("o", provider, provider_sid)

    async def end_for_person(self, person: str, now: float) -> int:
        return await self._end_indexed("p", "", person)

    async def sessions_of_person(self, person: str, now: float) -> list[SessionInfo]:
        _, records = await self._indexed_records("p", "", person)
        if not records:
            return []

        async def details() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for record in records:
                pipe.get(self._meta_key(record))
                pipe.pttl(record)
            found: list[Any] = await pipe.execute()
            return found

        replies = await self._call("read", details)
        sessions: list[SessionInfo] = []
        for i, record in enumerate(records):
            meta, pttl = replies[2 * i], replies[2 * i + 1]
            if meta is None or not isinstance(pttl, int) or pttl <= 0:
                continue  # ended or expired: the index entry outlived it
            data = json.loads(meta)
            sessions.append(
                SessionInfo(
                    reference=record[len(self._prefix) + 2 :],
                    provider=str(data["provider"]),
                    acr=data.get("acr"),
                    created=float(data["created"]),
                    last_seen=now - max(0.0, self._idle - pttl / 1000),
                    expires=float(data["expires"]),
                )
            )
        return sorted(sessions, key=lambda info: info.created)

    async def end_by_reference(self, reference: str, now: float) -> int:
        if len(reference) != 64 or any(c not in "0123456789abcdef" for c in reference):
            return 0
        record_key = self._prefix + "s:" + reference

        def queue(pipe: Any) -> None:
            pipe.delete(record_key)
            pipe.delete(self._meta_key(record_key))

        replies = await self._call("delete", lambda: self._durable("delete", queue))
        return int(replies[0])

    # -- single use and locks -------------------------------------------------------------------------
    async def is_spent(self, marker: str, now: float) -> bool:
        key = self._marker_key("x", marker)
        return bool(await self._call("read", lambda: self._redis.exists(key)))

    async def spend(self, marker: str, expires: float, now: float) -> bool:
        key = self._marker_key("x", marker)
        # A token of this call's own, read back: a durable write may be sent twice (once to a primary that
        # then turned out not to be one), and the second SET NX must not make the first caller lose.
        token = secrets.token_bytes(16)

        def queue(pipe: Any) -> None:
            pipe.set(key, token, nx=True, px=_ms(expires - now))
            pipe.get(key)

        replies = await self._call("write", lambda: self._durable("write", queue))
        stored = replies[1]
        return isinstance(stored, bytes) and hmac.compare_digest(stored, token)

    async def lock(self, name: str, ttl: float) -> str | None:
        key, token = self._marker_key("l", name), secrets.token_urlsafe(16)
        taken = await self._call("lock", lambda: self._redis.set(key, token, nx=True, px=_ms(ttl)))
        return token if taken else None

    async def unlock(self, name: str, token: str) -> None:
        key = self._marker_key("l", name)
        await self._call("lock", lambda: self._redis.eval(_UNLOCK, 1, key, token))

    async def count_hit(self, name: str, window: float, now: float) -> int:
        """One round trip (a script: INCR, and PEXPIRE on the first hit), shared by every replica. The key is
        prefix + ``rl:`` + SHA-256(window, name) + ``:`` + window index; it expires a second after its window
        ends (replicas' clocks differ a little). Not waited for: a count lost in a failover only lets a
        few more hits through in that window."""
        index = int(now // window)
        digest = hashlib.sha256(f"{window!r}\0{name}".encode()).hexdigest()
        key = f"{self._prefix}rl:{digest}:{index}"
        ttl = _ms((index + 1) * window - now + 1)
        return int(await self._call("write", lambda: self._redis.eval(_COUNT_HIT, 1, key, ttl)))

    async def healthy(self) -> bool:
        try:
            await self._call("ping", lambda: self._redis.ping())
        except StoreUnavailableError:
            return False
        return True

    async def close(self) -> None:
        for task in self._watchers or ():
            task.cancel()
        for task in self._watchers or ():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._redis.aclose()
        if self._sentinel_pool is not None:  # master_for's client does not close the Sentinel clients
            await self._sentinel_pool.sentinel_manager.aclose()
