"""Reload without restart (issue 17 item 5): `kill -HUP` on the real `eid-gateway run` process, one and two
workers, under a steady stream of authenticated requests. A valid file puts the new route headers in force
within a second, with no request failing and the session kept; an invalid file, or one that changes a key only
a restart can apply, leaves the running configuration serving and is counted and logged."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.echo import EchoUpstream
from tests.support.ports import free_port, free_port_run
from tests.support.process import GatewayProcess, gateway_process, metric
from tests.support.stack import base_config, browser_login, start_dev_idp

CLIENTS = 4


class Load:
    """CLIENTS loops of authenticated GETs until stopped; every answer that is not a 200 is a failure."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.sent = 0
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                async with self.http.get(self.url, headers={"Accept": "application/json"}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        self.failures.append(f"HTTP {resp.status}")
            except aiohttp.ClientError as exc:
                self.failures.append(repr(exc))
            self.sent += 1

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(CLIENTS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []


def write(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")


async def reloads(gw: GatewayProcess, result: str) -> float:
    total = 0.0
    for worker in range(gw.workers):
        total += metric(await gw.metrics(worker), "gateway_config_reload_total", result=result)
    return total


async def wait_for(condition: Any, timeout: float) -> float:
    """Seconds until ``condition()`` held; AssertionError after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await condition():
            return time.monotonic() - started
        await asyncio.sleep(0.005)
    raise AssertionError(f"not within {timeout}s")


@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_reloads_routes_under_load(tmp_path: Path, workers: int) -> None:
    idp_port, gateway_port = free_port(), free_port()
    metrics_base = free_port_run(workers)
    issuer = f"http://127.0.0.1:{idp_port}"
    secret = secrets.token_urlsafe(24)
    async with EchoUpstream() as echo:
        config = base_config(
            gateway_port=gateway_port, metrics_port=metrics_base, issuer=issuer, upstream=echo.url,
            client_secret=secret,
        )
        for key in ("upstream", "headers", "public_paths"):
            del config[key]
        config["log_level"] = "warning"
        config["routes"] = [{"name": "app", "upstream": echo.url, "headers": {"name": "X-Auth-Name"}}]
        idp = await start_dev_idp(idp_port, issuer, public_url=config["public_url"], secret=secret)
        try:
            async with (
                gateway_process(config, tmp_path, workers=workers) as gw,
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
                contextlib.AsyncExitStack() as stack,
            ):
                final = await browser_login(http, f"{gw.url}/app/start")
                assert final.status == 200, await final.text()
                config_file = tmp_path / "gateway.yaml"
                load = Load(http, f"{gw.url}/app/page")
                load.start()
                stack.push_async_callback(load.stop)
                await asyncio.sleep(0.3)
                assert "X-Auth-Country" not in echo.requests[-1].headers

                # 1. A valid change: the new headers arrive within a second, on every worker.
                changed = copy.deepcopy(config)
                changed["routes"][0]["headers"] = {"name": "X-Auth-Name", "country": "X-Auth-Country"}
                write(config_file, changed)
                gw.proc.send_signal(signal.SIGHUP)
                seen = len(echo.requests)

                async def country_everywhere() -> bool:
                    recent = echo.requests[seen:]
                    # Every request after the first new one carries it: no worker serves the old routes.
                    first = next((i for i, r in enumerate(recent) if "X-Auth-Country" in r.headers), None)
                    return first is not None and len(recent) - first >= 20 * workers and all(
                        "X-Auth-Country" in r.headers for r in recent[first:]
                    )

                took = await wait_for(country_everywhere, 1.0)
                assert await reloads(gw, "ok") == workers
                print(f"\nreload with {workers} worker(s): new headers on every request after {took * 1000:.0f} ms")

                # 2. An invalid file: refused with check-config's message, the running routes serve on.
                broken = copy.deepcopy(changed)
                broken["routes"][0]["headers"] = {"email": "X-Auth-Email"}
                write(config_file, broken)
                gw.proc.send_signal(signal.SIGHUP)
                await wait_for(lambda: _async(reloads(gw, "invalid"), workers), 2.0)
                assert "routes[0].headers.email: unknown canonical claim" in gw.log()
                assert "config_reload_failed" in gw.log()

                # 3. A key only a restart can apply (the listener): refused as a whole, named.
                moved = copy.deepcopy(changed)
                moved["listen"] = f"127.0.0.1:{free_port()}"
                moved["routes"][0]["headers"] = {"name": "X-Auth-Name"}
                write(config_file, moved)
                gw.proc.send_signal(signal.SIGHUP)
                await wait_for(lambda: _async(reloads(gw, "invalid"), 2 * workers), 2.0)
                assert "listen: changed, and only a restart applies it" in gw.log()

                await asyncio.sleep(0.2)
                count = len(echo.requests)
                await asyncio.sleep(0.2)
                await load.stop()
                assert all("X-Auth-Country" in r.headers for r in echo.requests[count:]), "old routes still serve"
                assert load.failures == [], load.failures[:5]
                assert load.sent > 100
                assert gw.proc.poll() is None  # still running: nothing was restarted
        finally:
            await idp.cleanup()


async def _async(value: Any, expected: float) -> bool:
    return bool(await value >= expected)


async def test_an_unreadable_file_is_refused_like_an_invalid_one(tmp_path: Path) -> None:
    from gateway import reload
    from gateway.runtime import RUNTIME
    from tests.support.stack import running_stack

    async with running_stack() as stack:
        rt = stack.gateway.app[RUNTIME]
        before = rt.table
        bad = tmp_path / "latin1.yaml"
        bad.write_bytes(b"public_url: http://h\xe4st\n")  # not UTF-8
        assert reload.reload_from(rt, bad) is False
        assert reload.reload_from(rt, tmp_path / "missing.yaml") is False
        assert rt.table is before
        assert rt.metrics.config_reloads.labels("invalid")._value.get() == 2
