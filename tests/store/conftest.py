"""Fixtures of the session store suite (tests/store/).

``pair``: two gateway replicas in front of one echo upstream and the development IdP, once with the
default cookie store and once with a shared redis-server; started once per module and store, on the
module's event loop. Idle timeout 3 s and lifetime 10 s, so that sliding and absolute expiry take seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.store.support import IDLE_TIMEOUT, LIFETIME, Replicas, replicas

#: redis-6379 is the machine's Redis on 127.0.0.1:6379 (what the CI statement of issue 5 names); the fault
#: tests, which stop Redis, use a redis-server of their own.
STORES = ["cookie", "redis", "redis-6379"]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORES)
async def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Replicas]:
    tmp = tmp_path_factory.mktemp(f"store-{request.param}")
    async with replicas(tmp, request.param, idle_timeout=f"{IDLE_TIMEOUT:g}s", lifetime=f"{LIFETIME:g}s") as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis_pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Replicas]:
    """The same two replicas with the Redis store only, for what only the Redis store has."""
    tmp = tmp_path_factory.mktemp("store-redis-only")
    async with replicas(tmp, "redis", idle_timeout=f"{IDLE_TIMEOUT:g}s", lifetime=f"{LIFETIME:g}s") as running:
        yield running
