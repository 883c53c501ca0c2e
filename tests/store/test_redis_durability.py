"""Durable writes of the Redis store against real redis-server processes (a primary and its replica on free
loopback ports): logouts and spent markers wait for a replica's acknowledgement (``WAIT 1``) when the primary
has one, are not confirmed (UnconfirmedWriteError, a 503) when none comes, and do not wait on a Redis without
replicas; logins do not wait. A demoted primary's READONLY fails closed; a Sentinel-managed connection that
reaches a replica is refused at connect (its ROLE is checked)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff

from gateway.protocol.claims import Identity
from gateway.session import redis_store
from gateway.session.model import Session
from gateway.session.redis_store import PrimaryConnection, RedisStore, connect
from gateway.session.store import StoreUnavailableError, UnconfirmedWriteError
from gateway.session.store_url import parse_store_url
from tests.support.redis_sentinel import Pair, RedisNode, primary_and_replica

SECRET = "0123456789abcdef0123456789abcdef-durable"


@pytest_asyncio.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with primary_and_replica(tmp_path) as found:
        yield found


def store_for(url: str) -> RedisStore:
    return RedisStore(
        connect(parse_store_url(url), timeout=0.5), secrets_=[SECRET], prefix="dur:", idle_timeout=600, lifetime=3600
    )


async def logged_in(store: RedisStore, sub: str = "p1") -> Session:
    now = time.time()
    session = Session.new(Identity(values={"sub": sub, "idp": "dev"}), now=now, lifetime=3600, idle_timeout=600)
    return replace(session, handle=await store.save(session, now))


async def test_logouts_and_markers_wait_for_the_replica_and_logins_do_not(pair: Pair) -> None:
    store = store_for(pair.url())
    try:
        now = time.time()
        assert await store.spend("warm-up", now + 60, now)  # learns that the primary has a replica
        waits = pair.calls("wait")
        session = await logged_in(store)
        assert pair.calls("wait") == waits, "a login waited for a replica"
        await store.end(session, time.time())
        assert pair.calls("wait") == waits + 1
        assert (await store.load(session.handle or "", time.time())).session is None
        assert await store.spend("m1", now + 60, now)
        assert not await store.spend("m1", now + 60, now)
        assert pair.calls("wait") == waits + 3
        other = await logged_in(store, "p2")
        assert await store.end_for_subject("dev", "p2", time.time()) == 1
        assert (await store.load(other.handle or "", time.time())).session is None
        assert pair.calls("wait") == waits + 4
        # What the replica has is what was confirmed.
        with pair.replica.client() as client:
            assert client.dbsize() >= 2  # the spent markers, at least
    finally:
        await store.close()


async def test_a_redis_without_replicas_does_not_wait(tmp_path: Path) -> None:
    alone = RedisNode(tmp_path, "alone")
    alone.launch()
    try:
        await alone.wait_answers()
        store = store_for(f"redis://127.0.0.1:{alone.port}/0")
        try:
            session = await logged_in(store)
            started = time.monotonic()
            await store.end(session, time.time())
            now = time.time()
            assert await store.spend("m", now + 60, now)
            assert time.monotonic() - started < 0.2
            with alone.client() as client:
                assert "cmdstat_wait" not in client.info("commandstats")
        finally:
            await store.close()
    finally:
        alone.stop()


async def test_a_replica_that_does_not_acknowledge_makes_logouts_unconfirmed(pair: Pair) -> None:
    """SIGSTOP: the replica is still connected and never acknowledges. The logout is not confirmed (a 503,
    not a "logged out" that a failover could undo), after the WAIT timeout (half the 0.5 s store timeout)."""
    store = store_for(pair.url())
    try:
        session = await logged_in(store)
        now = time.time()
        assert await store.spend("warm-up", now + 60, now)
        assert pair.replica.process is not None
        pair.replica.process.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(UnconfirmedWriteError) as info:
            await store.end(session, time.time())
        elapsed = time.monotonic() - started
        assert isinstance(info.value, StoreUnavailableError) and info.value.status == 503
        assert 0.2 <= elapsed < 0.8, elapsed
        with pytest.raises(UnconfirmedWriteError):
            await store.spend("m2", now + 60, now)
        pair.replica.process.send_signal(signal.SIGCONT)
        await store.end(session, time.time())  # confirmed once the replica answers again
        assert (await store.load(session.handle or "", time.time())).session is None
    finally:
        await store.close()


async def test_a_primary_that_just_lost_its_replica_is_not_trusted_for_a_while(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replica gone (as when Sentinel promotes it): for REPLICA_MEMORY the primary may be the old one of
    a failover, so logouts stay unconfirmed; afterwards they are confirmed without a replica (from then on
    ``min-replicas-to-write`` on the primary is what refuses writes, if set)."""
    monkeypatch.setattr(redis_store, "REPLICA_MEMORY", 1.5)
    store = store_for(pair.url())
    try:
        now = time.time()
        assert await store.spend("warm-up", now + 60, now)
        pair.replica.kill()
        for _ in range(100):  # the primary notices the closed link at once
            with pair.primary.client() as client:
                if client.info("replication")["connected_slaves"] == 0:
                    break
            await asyncio.sleep(0.02)
        lost_at = time.monotonic()
        session = await logged_in(store)  # logins do not wait: still fine
        with pytest.raises(UnconfirmedWriteError):
            await store.end(session, time.time())
        with pytest.raises(UnconfirmedWriteError):
            await store.end(session, time.time())
        await asyncio.sleep(max(0.0, lost_at + 1.7 - time.monotonic()))
        await store.end(session, time.time())
        assert (await store.load(session.handle or "", time.time())).session is None
    finally:
        await store.close()


async def test_concurrent_spends_of_one_marker_have_one_winner(pair: Pair) -> None:
    store = store_for(pair.url())
    try:
        now = time.time()
        results = await asyncio.gather(*(store.spend("once", now + 60, now) for _ in range(30)))
        assert results.count(True) == 1
    finally:
        await store.close()


async def test_readonly_from_a_demoted_primary_fails_closed_and_service_resumes(pair: Pair) -> None:
    """``redis://`` pointed at a node that becomes a replica (REPLICAOF): its writes answer READONLY. The
    store drops its connections and tries once more, then fails closed; when the node is a primary again,
    the same store works without a restart."""
    store = store_for(pair.url(pair.replica))  # the "replica" node starts as a primary of its own here
    with pair.replica.client() as client:
        client.execute_command("REPLICAOF", "NO", "ONE")
    try:
        session = await logged_in(store)
        with pair.replica.client() as client:
            client.execute_command("REPLICAOF", "127.0.0.1", str(pair.primary.port))
        for operation in (
            lambda: logged_in(store, "p3"),
            lambda: store.end(session, time.time()),
            lambda: store.count_hit("x", 60, time.time()),
        ):
            with pytest.raises(StoreUnavailableError):
                await operation()
        with pair.replica.client() as client:
            client.execute_command("REPLICAOF", "NO", "ONE")
        again = await logged_in(store, "p4")
        await store.end(again, time.time())
    finally:
        await store.close()


class StubSentinels:
    """Stands in for redis-py's Sentinel: names whatever address it is given as the primary."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sentinels: list[Any] = []  # nothing to subscribe to

    async def discover_master(self, _service: str) -> tuple[str, int]:
        return self.address

    async def aclose(self) -> None:
        return None


def sentinel_managed(address: tuple[str, int]) -> Any:
    pool = SentinelConnectionPool(
        "svc",
        StubSentinels(address),
        connection_class=PrimaryConnection,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 1),
    )
    return aioredis.Redis.from_pool(pool)


async def test_a_sentinel_answer_that_names_a_replica_is_refused_at_connect(pair: Pair) -> None:
    """A Sentinel's answer may be a moment old: the connection checks ROLE and refuses a replica, so nothing
    is read from or written to it as if it were the primary."""
    wrong = RedisStore(sentinel_managed(("127.0.0.1", pair.replica.port)), secrets_=[SECRET], prefix="dur:",
                       idle_timeout=600, lifetime=3600)  # fmt: skip
    right = RedisStore(sentinel_managed(("127.0.0.1", pair.primary.port)), secrets_=[SECRET], prefix="dur:",
                       idle_timeout=600, lifetime=3600)  # fmt: skip
    try:
        session = await logged_in(right)
        await pair.replica_in_sync()
        with pytest.raises(StoreUnavailableError):
            await wrong.load(session.handle or "", time.time())
        assert not await wrong.healthy()
        assert (await right.load(session.handle or "", time.time())).session is not None
    finally:
        await wrong.close()
        await right.close()
