"""The stores' ``count_hit`` (the rate limiter's counter), one contract for both stores: the in-memory one of
the cookie store (per process, bounded) and the Redis store (a redis-server of the test's own; shared by
every replica, one round trip, expiring with its window, failing closed)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import redis

from gateway.session import store as store_module
from gateway.session.codec import Keyring
from gateway.session.redis_store import RedisStore, connect
from gateway.session.store import CookieStore, StoreUnavailableError
from gateway.session.store_url import parse_store_url
from tests.support.ports import free_port
from tests.support.redis_server import redis_server

SECRET = "0123456789abcdef0123456789abcdef-count-hit"
T0 = 1_699_999_200.0  # a multiple of 60 and of 3600: window starts are easy to see


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("count-hit")) as url:
        yield url


def redis_store(url: str, prefix: str) -> RedisStore:
    return RedisStore(
        connect(parse_store_url(url), timeout=0.5), secrets_=[SECRET], prefix=prefix, idle_timeout=60, lifetime=600
    )


@pytest_asyncio.fixture(params=["cookie", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Any]:
    if request.param == "cookie":
        yield CookieStore(Keyring([SECRET]), lifetime=600, clock=time.time)
        return
    found = redis_store(redis_url, f"hits{free_port()}:")
    try:
        yield found
    finally:
        await found.close()


async def test_counts_hits_in_the_current_window_and_starts_again_in_the_next(store: Any) -> None:
    assert [await store.count_hit("login:a", 60, T0 + t) for t in (0, 1, 30, 59.999)] == [1, 2, 3, 4]
    assert await store.count_hit("login:a", 60, T0 + 60) == 1  # window index int(now // 60) moved on
    assert await store.count_hit("login:a", 60, T0 + 119.5) == 2
    assert await store.count_hit("login:a", 60, T0 - 0.001) == 1  # the window before T0 is another one


async def test_names_and_window_lengths_are_separate_counters(store: Any) -> None:
    assert await store.count_hit("login:a", 60, T0) == 1
    assert await store.count_hit("login:b", 60, T0) == 1
    assert await store.count_hit("login:a", 3600, T0) == 1  # the same name with another window length
    assert await store.count_hit("login:a", 60, T0 + 1) == 2
    assert await store.count_hit("login:b", 60, T0 + 1) == 2
    assert await store.count_hit("login:a", 3600, T0 + 1) == 2


async def test_concurrent_hits_are_each_counted_once(store: Any) -> None:
    # 80: within redis-py's pool of 100 connections per client (more at once is MaxConnectionsError, a 503)
    counts = await asyncio.gather(*(store.count_hit("storm", 10, T0 + 3) for _ in range(80)))
    assert sorted(counts) == list(range(1, 81))


async def test_fractional_windows(store: Any) -> None:
    assert await store.count_hit("fast", 0.5, T0 + 0.1) == 1
    assert await store.count_hit("fast", 0.5, T0 + 0.4) == 2
    assert await store.count_hit("fast", 0.5, T0 + 0.5) == 1


async def test_redis_counter_is_shared_by_replicas_and_expires_with_its_window(redis_url: str) -> None:
    prefix = f"hits{free_port()}:"
    a, b = redis_store(redis_url, prefix), redis_store(redis_url, prefix)
    try:
        now = time.time()
        window = 60.0
        assert await a.count_hit("ciba:person", window, now) == 1
        assert await b.count_hit("ciba:person", window, now) == 2  # another replica, the same counter
        assert await a.count_hit("ciba:person", window, now) == 3
        client = redis.Redis.from_url(redis_url)
        try:
            keys = [k.decode() for k in client.scan_iter(match=prefix + "*")]
            index = int(now // window)
            digest = hashlib.sha256(f"{window!r}\0ciba:person".encode()).hexdigest()
            assert keys == [f"{prefix}rl:{digest}:{index}"], keys  # the name is never in the key in clear
            ttl_ms = int(client.pttl(keys[0]))
            remaining = ((index + 1) * window - now) * 1000
            assert remaining - 200 < ttl_ms <= remaining + 1000, (ttl_ms, remaining)  # window end, plus 1 s
        finally:
            client.close()
    finally:
        await a.close()
        await b.close()


async def test_redis_counter_key_is_gone_after_a_short_window(redis_url: str) -> None:
    prefix = f"hits{free_port()}:"
    found = redis_store(redis_url, prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        assert await found.count_hit("short", 0.2, time.time()) == 1
        assert list(client.scan_iter(match=prefix + "*"))
        await asyncio.sleep(1.5)  # the window (under 0.2 s) and the second of slack
        assert not list(client.scan_iter(match=prefix + "*"))
    finally:
        client.close()
        await found.close()


async def test_redis_counter_fails_closed_when_redis_is_gone() -> None:
    found = redis_store(f"redis://127.0.0.1:{free_port()}/0", "gone:")  # nothing listens there
    try:
        with pytest.raises(StoreUnavailableError):
            await found.count_hit("login:a", 60, T0)
    finally:
        await found.close()


async def test_in_memory_counters_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_MAX_COUNTERS", 50)
    memory = CookieStore(Keyring([SECRET]), lifetime=600, clock=time.time)
    for number in range(49):
        await memory.count_hit(f"old:{number}", 1, T0)
    # A later window: the expired counters make room.
    for number in range(40):
        assert await memory.count_hit(f"new:{number}", 1, T0 + 5) == 1
    assert len(memory._hits) <= 50
    assert await memory.count_hit("new:0", 1, T0 + 5) == 2
    # As many live counters as the bound: it starts over rather than grow.
    for number in range(200):
        await memory.count_hit(f"flood:{number}", 1, T0 + 5)
    assert len(memory._hits) <= 50
