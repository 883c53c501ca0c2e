"""The upstream application fails behind a logged-in session: it is slow (504), it is killed (502), it
comes back (200 again). Error answers must carry no identity of the session.

Real processes: the gateway, the development IdP and the upstream (tests/faults/upstream_app.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.faults.support import (
    Plan,
    Service,
    assert_clean_error_page,
    assert_no_identity,
    get_echo,
    jar_session,
    login,
    person,
    running,
    upstream,
    write_key,
)
from tests.support.process import GatewayProcess, gateway_process, metric

CONNECT_TIMEOUT = 1.0  # upstream_timeouts.connect
READ_TIMEOUT = 1.0  # upstream_timeouts.read
SLOW = 3.0  # how long the slow upstream path takes: longer than the read timeout
MARGIN = 2.0
ASA = person("se-asa")


@dataclass
class Env:
    gw: GatewayProcess
    app: Service
    http: aiohttp.ClientSession  # logged in as ASA


@asynccontextmanager
async def logged_in(tmp_path: Path) -> AsyncIterator[Env]:
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(running(upstream(tmp_path)))
        plan = Plan(tmp_path, upstream_url=f"http://127.0.0.1:{app.port}")
        plan.config["upstream_timeouts"] = {"connect": f"{CONNECT_TIMEOUT:g}s", "read": f"{READ_TIMEOUT:g}s"}
        await stack.enter_async_context(running(plan.idp(write_key(tmp_path / "idp-key.pem"))))
        gw = await stack.enter_async_context(gateway_process(plan.config, tmp_path, workers=1))
        http = await stack.enter_async_context(jar_session())
        await login(http, f"{gw.url}/private/start", ASA)
        yield Env(gw=gw, app=app, http=http)


async def fetch(http: aiohttp.ClientSession, url: str, accept: str) -> tuple[int, str, str, Any, float]:
    started = time.monotonic()
    async with http.get(url, headers={"Accept": accept}, allow_redirects=False) as resp:
        body = await resp.text()
        return resp.status, resp.content_type, body, resp.headers, time.monotonic() - started


def check_error(answer: tuple[int, str, str, Any, float], *, status: int, code: str, limit: float) -> None:
    got, ctype, body, headers, elapsed = answer
    assert got == status, f"HTTP {got} (expected {status}): {body[:800]}"
    assert elapsed < limit, f"the {status} took {elapsed:.2f}s (limit {limit}s)"
    assert_no_identity(body, headers, ASA)
    if ctype == "application/json":
        assert json.loads(body)["error"] == code, body
    else:
        assert_clean_error_page(body, got, ctype)
        assert f"Error code: {code}" in body, body


async def test_slow_upstream_is_a_504_without_identity(tmp_path: Path) -> None:
    async with logged_in(tmp_path) as env:
        url = f"{env.gw.url}/slow/{SLOW:g}/report"
        page, api = await asyncio.gather(fetch(env.http, url, "text/html"), fetch(env.http, url, "application/json"))
        check_error(page, status=504, code="upstream_timeout", limit=READ_TIMEOUT + MARGIN)
        check_error(api, status=504, code="upstream_timeout", limit=READ_TIMEOUT + MARGIN)
        assert metric(await env.gw.metrics(0), "gateway_upstream_errors_total", kind="timeout") == 2
        # Only that path was slow: the rest of the application is served, with the identity.
        status, echoed = await get_echo(env.http, f"{env.gw.url}/fast")
        assert status == 200 and echoed["headers"]["X-Auth-Ssn"] == ASA.ssn, (status, echoed)
        env.app.kill()  # its slow handlers would hold up a graceful stop


async def test_upstream_killed_is_a_502_without_identity_then_served_again_after_restart(tmp_path: Path) -> None:
    async with logged_in(tmp_path) as env:
        status, _ = await get_echo(env.http, f"{env.gw.url}/before")  # a pooled keep-alive connection
        assert status == 200

        env.app.kill()
        for accept in ("text/html", "application/json"):
            answer = await fetch(env.http, f"{env.gw.url}/during/outage", accept)
            check_error(answer, status=502, code="upstream_error", limit=CONNECT_TIMEOUT + MARGIN)
        assert metric(await env.gw.metrics(0), "gateway_upstream_errors_total", kind="connect") == 2

        env.app.start()
        await env.app.wait_listening()
        # The very first request after the restart already works: no stale pooled connection is reused.
        for i in range(5):
            status, echoed = await get_echo(env.http, f"{env.gw.url}/after/{i}")
            assert status == 200, (i, status, echoed)
            assert echoed["path"] == f"/after/{i}"
            assert echoed["headers"]["X-Auth-Ssn"] == ASA.ssn and "X-Auth-Assertion" in echoed["headers"]
        assert "Traceback" not in env.gw.log(), env.gw.log()

