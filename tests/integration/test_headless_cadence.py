"""A client that asks for the status once per poll interval, on its own clock (a page with setInterval, a
script with a fixed cadence), gets one provider poll per interval: the gateway's next poll is due one
interval after the previous *answer*, so such a client is always a little early, and without waiting for
the due time the gateway would poll only on every second ask (issue 6, bench row 5)."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.test_headless_faults import idp_poll_times
from tests.integration.test_headless_replicas import BINDING, _polls
from tests.support.headless_stack import running_headless_stack

INTERVAL = 1.0
ASKS = 6


def _interval(config: dict[str, Any]) -> None:
    config["providers"][0]["poll_interval"] = f"{int(INTERVAL * 1000)}ms"


async def _start(browser: aiohttp.ClientSession, url: str) -> str:
    async with browser.post(
        f"{url}/_auth/headless/start", json={"provider": "se-bankid", "rd": "/"}, headers={"Origin": url}
    ) as resp:
        assert resp.status == 200, await resp.text()
    return {c.key: c.value for c in browser.cookie_jar}[BINDING]


async def test_a_status_call_on_a_fixed_cadence_gets_one_poll_per_interval(tmp_path: Path) -> None:
    async with (
        running_headless_stack(tmp_path, customize=_interval) as stack,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
        aiohttp.ClientSession() as plain,
    ):
        binding = await _start(browser, stack.url)
        started = time.monotonic()
        waited: list[float] = []
        for ask in range(1, ASKS + 1):
            await asyncio.sleep(max(0.0, started + ask * INTERVAL - time.monotonic()))
            asked = time.monotonic()
            async with plain.get(
                f"{stack.url}/_auth/headless/status", headers={"Cookie": f"{BINDING}={binding}"}
            ) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["status"] == "pending"
            waited.append(time.monotonic() - asked)
        polls = await _polls(plain, stack.gateway.metrics_url)
        # One poll per ask, all answered pending.
        assert polls == {"pending": float(ASKS)}, polls
        # Never sooner than the interval: the gaps between the polls' arrivals at the IdP, on its clock.
        arrivals = await idp_poll_times(stack)
        assert len(arrivals) == ASKS
        assert min(b - a for a, b in itertools.pairwise(arrivals)) >= INTERVAL, arrivals
        # No ask is held much longer than the early-ask window (half the interval) plus the poll itself.
        assert max(waited) < INTERVAL / 2 + 0.5, waited


async def test_an_ask_right_after_a_poll_does_not_wait_or_poll(tmp_path: Path) -> None:
    async with (
        running_headless_stack(tmp_path, customize=_interval) as stack,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
        aiohttp.ClientSession() as plain,
    ):
        binding = await _start(browser, stack.url)
        await asyncio.sleep(INTERVAL)
        timings = []
        for _ in range(3):
            asked = time.monotonic()
            async with plain.get(
                f"{stack.url}/_auth/headless/status", headers={"Cookie": f"{BINDING}={binding}"}
            ) as resp:
                assert resp.status == 200
            timings.append(time.monotonic() - asked)
        assert await _polls(plain, stack.gateway.metrics_url) == {"pending": 1.0}
        # The second and third asks come a whole interval early: answered at once, not held.
        assert max(timings[1:]) < 0.3, timings


async def test_a_held_status_call_sends_no_poll_for_a_transaction_cancelled_meanwhile(tmp_path: Path) -> None:
    async with (
        running_headless_stack(tmp_path, customize=_interval) as stack,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
        aiohttp.ClientSession() as plain,
    ):
        binding = await _start(browser, stack.url)
        cookie = {"Cookie": f"{BINDING}={binding}"}
        await asyncio.sleep(INTERVAL)
        async with plain.get(f"{stack.url}/_auth/headless/status", headers=cookie) as resp:
            assert resp.status == 200
        answered = time.monotonic()
        assert len(await idp_poll_times(stack)) == 1
        # Ask 0.3 s before the next poll is due: the call is held; cancel while it waits.
        await asyncio.sleep(INTERVAL - 0.3)

        async def held_status() -> int:
            async with plain.get(f"{stack.url}/_auth/headless/status", headers=cookie) as resp:
                return resp.status

        held = asyncio.ensure_future(held_status())
        await asyncio.sleep(0.1)
        assert not held.done(), time.monotonic() - answered
        async with plain.post(
            f"{stack.url}/_auth/headless/cancel", headers={**cookie, "Origin": stack.url}
        ) as resp:
            assert resp.status == 200, await resp.text()
        assert await held == 404
        assert len(await idp_poll_times(stack)) == 1  # no poll for the cancelled login
