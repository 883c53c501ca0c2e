"""A headless (Idura / Swedish BankID) transaction served by two gateway replicas that share Redis: any
replica serves any step, the provider is polled at most once per interval however many status calls reach
however many replicas, and the finished transaction yields exactly one session."""

from __future__ import annotations

import asyncio
import copy
import math
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.gateway import run_gateway
from tests.support.headless_stack import POLL_INTERVAL, running_headless_stack
from tests.support.ports import free_port
from tests.support.redis_server import redis_server

BINDING = "gw_session_tx"


def _use_redis(url: str) -> Any:
    def customize(config: dict[str, Any]) -> None:
        config["session"]["store"] = url
        config["session"]["store_timeout"] = "500ms"

    return customize


async def _polls(http: aiohttp.ClientSession, metrics_url: str | None) -> dict[str, float]:
    """The polls this replica sent to the provider, by result."""
    assert metrics_url is not None
    async with http.get(metrics_url) as resp:
        text = await resp.text()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("gateway_idp_polls_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = counts.get(result, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


async def test_two_replicas_poll_once_per_interval_and_issue_one_session(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        async with running_headless_stack(tmp_path, customize=_use_redis(url)) as stack:
            second = copy.deepcopy(stack.config)
            second["listen"] = f"127.0.0.1:{free_port()}"
            second["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
            async with (
                run_gateway(second, base_dir=tmp_path) as replica_b,
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
                aiohttp.ClientSession() as plain,
            ):
                replicas = [stack.url, replica_b.url]
                headers = {"Origin": stack.url}
                async with browser.post(
                    f"{stack.url}/_auth/headless/start", json={"provider": "se-bankid", "rd": "/private/r"},
                    headers=headers,
                ) as resp:
                    assert resp.status == 200, await resp.text()
                    view = await resp.json()
                binding = {c.key: c.value for c in browser.cookie_jar}[BINDING]

                async def status(replica: str) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
                    async with plain.get(
                        f"{replica}/_auth/headless/status", headers={"Cookie": f"{BINDING}={binding}"}
                    ) as r:
                        body = await r.json() if r.status == 200 else {}
                        return r.status, body, r

                # Eight status calls at a time, half to each replica, for about ten intervals.
                started = time.monotonic()
                while time.monotonic() - started < 10 * POLL_INTERVAL:
                    answers = await asyncio.gather(*(status(replicas[i % 2]) for i in range(8)))
                    assert all(code == 200 and body["status"] == "pending" for code, body, _ in answers), answers
                    await asyncio.sleep(POLL_INTERVAL / 4)
                elapsed = time.monotonic() - started
                by_result: dict[str, float] = {}
                for metrics_url in (stack.gateway.metrics_url, replica_b.metrics_url):
                    for result, count in (await _polls(plain, metrics_url)).items():
                        by_result[result] = by_result.get(result, 0.0) + count
                polls = sum(by_result.values())
                # The dev IdP answers slow_down to a poll that comes sooner than its interval after the last
                # one: two replicas polling on their own do that (and then wait 5 s more, for good).
                assert by_result.get("slow_down", 0) == 0, by_result
                # The shared claim lasts 0.9 interval: at most one poll per claim window over both replicas.
                assert 5 <= polls <= math.ceil(elapsed / (0.9 * POLL_INTERVAL)) + 1, (by_result, elapsed)

                code, _ = await stack.idp(
                    "/_dev/bankid/identify", {"autoStartToken": view["acr_data"]["autoStartToken"], "person": "se-asa"}
                )
                assert code == 200
                sessions: list[str] = []
                deadline = time.monotonic() + 10
                while not sessions and time.monotonic() < deadline:
                    answers = await asyncio.gather(*(status(replicas[i % 2]) for i in range(8)))
                    for code, body, response in answers:
                        assert code in (200, 404), (code, body)
                        if code == 200 and body["status"] == "complete":
                            sessions.append(response.cookies["gw_session"].value)
                        else:
                            assert "gw_session" not in response.cookies or not response.cookies["gw_session"].value
                    await asyncio.sleep(POLL_INTERVAL / 4)
                assert len(sessions) == 1, sessions
                # That one session works on both replicas; the spent transaction is gone on both.
                for replica in replicas:
                    async with plain.get(f"{replica}/private/r", headers={"Cookie": f"gw_session={sessions[0]}"}) as r:
                        assert r.status == 200, await r.text()
                    code, _, _ = await status(replica)
                    assert code == 404
