"""A client that asks for the status once per poll interval, on its own clock (a page with setInterval, a
script with a fixed cadence), gets one provider poll per interval: the gateway's next poll is due one
interval after the previous *answer*, so such a client is always a little early, and without waiting for
the due time the gateway would poll only on every second ask (issue 6, bench row 5)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.test_headless_faults import idp_poll_times
from tests.integration.test_headless_replicas import BINDING, _polls
from tests.support.headless_stack import HeadlessStack, running_headless_stack

INTERVAL = 1.0
ASKS = 6


def _interval(config: dict[str, Any]) -> None:
    config["providers"][0]["poll_interval"] = f"{int(INTERVAL * 1000)}ms"


@dataclass
class PendingLogin:
    stack: HeadlessStack
    http: aiohttp.ClientSession
    cookie: dict[str, str]

    async def status(self) -> tuple[int, float]:
        """One status call: its HTTP status and how long it took."""
        asked = time.monotonic()
        async with self.http.get(f"{self.stack.url}/_auth/headless/status", headers=self.cookie) as resp:
            if resp.status == 200:
                assert (await resp.json())["status"] == "pending"
            return resp.status, time.monotonic() - asked

    async def provider_polls(self) -> dict[str, float]:
        return await _polls(self.http, self.stack.gateway.metrics_url)


@asynccontextmanager
async def pending_login(tmp_path: Path) -> AsyncIterator[PendingLogin]:
    """A started headless login (poll interval INTERVAL) and a plain client holding its binding cookie."""
    async with (
        running_headless_stack(tmp_path, customize=_interval) as stack,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
        aiohttp.ClientSession() as plain,
    ):
        url = stack.url
        async with browser.post(
            f"{url}/_auth/headless/start", json={"provider": "se-bankid", "rd": "/"}, headers={"Origin": url}
        ) as resp:
            assert resp.status == 200, await resp.text()
        binding = {c.key: c.value for c in browser.cookie_jar}[BINDING]
        yield PendingLogin(stack, plain, {"Cookie": f"{BINDING}={binding}"})


async def test_a_status_call_on_a_fixed_cadence_gets_one_poll_per_interval(tmp_path: Path) -> None:
    async with pending_login(tmp_path) as login:
        started = time.monotonic()
        waited: list[float] = []
        for ask in range(1, ASKS + 1):
            await asyncio.sleep(max(0.0, started + ask * INTERVAL - time.monotonic()))
            status, took = await login.status()
            assert status == 200
            waited.append(took)
        # One poll per ask, all answered pending.
        assert await login.provider_polls() == {"pending": float(ASKS)}
        # Never sooner than the interval: the gaps between the polls' arrivals at the IdP, on its clock.
        arrivals = await idp_poll_times(login.stack)
        assert len(arrivals) == ASKS
        assert min(b - a for a, b in itertools.pairwise(arrivals)) >= INTERVAL, arrivals
        # No ask is held much longer than the early-ask window (half the interval) plus the poll itself.
        assert max(waited) < INTERVAL / 2 + 0.5, waited


async def test_an_ask_right_after_a_poll_does_not_wait_or_poll(tmp_path: Path) -> None:
    async with pending_login(tmp_path) as login:
        await asyncio.sleep(INTERVAL)
        answers = [await login.status() for _ in range(3)]
        assert [status for status, _ in answers] == [200, 200, 200]
        assert await login.provider_polls() == {"pending": 1.0}
        # The second and third asks come a whole interval early: answered at once, not held.
        assert max(took for _, took in answers[1:]) < 0.3, answers


async def test_a_held_status_call_sends_no_poll_for_a_transaction_cancelled_meanwhile(tmp_path: Path) -> None:
    async with pending_login(tmp_path) as login:
        await asyncio.sleep(INTERVAL)
        assert (await login.status())[0] == 200
        answered = time.monotonic()
        assert len(await idp_poll_times(login.stack)) == 1
        # Ask 0.3 s before the next poll is due: the call is held; cancel while it waits.
        await asyncio.sleep(INTERVAL - 0.3)
        held = asyncio.ensure_future(login.status())
        await asyncio.sleep(0.1)
        assert not held.done(), time.monotonic() - answered
        url = login.stack.url
        async with login.http.post(f"{url}/_auth/headless/cancel", headers={**login.cookie, "Origin": url}) as resp:
            assert resp.status == 200, await resp.text()
        assert (await held)[0] == 404
        assert len(await idp_poll_times(login.stack)) == 1  # no poll for the cancelled login
