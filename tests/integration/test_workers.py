"""`eid-gateway run --workers N` as a real subprocess: N forked workers share the port (SO_REUSEPORT), a
session and the generated assertion key work across workers, and SIGTERM drains without losing a request.

The development IdP and the echo upstream run in the test process, on free loopback ports."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.protocol import jws
from tests.support.echo import EchoUpstream
from tests.support.ports import free_port, free_port_run
from tests.support.process import GatewayProcess, fresh_session, gateway_process, metric
from tests.support.stack import base_config, browser_login, start_dev_idp

REQUESTS = 200
SLOW_DELAY = 3.0  # longer than the 2 s drain notice: the requests are still running when the listener closes
GRACE = 5.0


@dataclass
class SlowEcho(EchoUpstream):
    """The echo upstream, but /slow/... answers only after ``delay`` seconds; counts the ones under way."""

    delay: float = SLOW_DELAY
    slow_started: int = 0
    slow_answered: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    expect: int = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/slow/"):
            self.slow_started += 1
            if self.slow_started >= self.expect:
                self.arrived.set()
            await asyncio.sleep(self.delay)
            self.slow_answered += 1
        return await super()._handle(request)


@dataclass
class Env:
    gw: GatewayProcess
    echo: SlowEcho
    http: aiohttp.ClientSession  # logged in; a new TCP connection per request


@asynccontextmanager
async def logged_in(tmp_path: Path, *, workers: int) -> AsyncIterator[Env]:
    """Dev IdP + slow echo upstream in this process, the gateway as a subprocess, and a logged-in client."""
    idp_port, gateway_port = free_port(), free_port()
    metrics_base = free_port_run(workers)
    issuer = f"http://127.0.0.1:{idp_port}"
    secret = secrets.token_urlsafe(24)
    echo = SlowEcho()
    async with echo:
        config = base_config(
            gateway_port=gateway_port,
            metrics_port=metrics_base,
            issuer=issuer,
            upstream=echo.url,
            client_secret=secret,
        )
        config["shutdown_grace"] = f"{GRACE:g}s"
        config["log_level"] = "warning"
        idp = await start_dev_idp(idp_port, issuer, public_url=config["public_url"], secret=secret)
        try:
            async with (
                gateway_process(config, tmp_path, workers=workers) as gw,
                fresh_session(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
            ):
                final = await browser_login(http, f"{gw.url}/private/start")
                assert final.status == 200, await final.text()
                assert (await final.json())["path"] == "/private/start"
                yield Env(gw=gw, echo=echo, http=http)
        finally:
            await idp.cleanup()


async def proxied_counts(gw: GatewayProcess) -> list[float]:
    return [metric(await gw.metrics(i), "gateway_requests_total", outcome="proxied") for i in range(gw.workers)]


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_requests_spread_over_both_workers_and_sessions_cross_workers(tmp_path: Path) -> None:
    async with logged_in(tmp_path, workers=2) as env:
        gw, echo = env.gw, env.echo
        before = len(echo.requests)
        results = await asyncio.gather(*(get_json(env.http, f"{gw.url}/api/item/{i}") for i in range(REQUESTS)))
        # A session made by one worker is accepted by the other: no login redirect, no 401 anywhere.
        statuses = sorted({status for status, _ in results})
        assert statuses == [200], statuses
        assert [body["path"] for _, body in results] == [f"/api/item/{i}" for i in range(REQUESTS)]
        seen = echo.requests[before:]
        assert len(seen) == REQUESTS
        assert all(r.headers.getall("X-Auth-Country") == ["SE"] for r in seen)
        # Each worker counts in its own registry, on metrics port base + index. The login's last hop
        # (the return to /private/start) was proxied too: exactly REQUESTS + 1 between them.
        deadline = time.monotonic() + 2
        while sum(counts := await proxied_counts(gw)) < REQUESTS + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert all(c > 0 for c in counts), f"one worker served nothing: {counts}"
        assert sum(counts) == REQUESTS + 1, counts

        # The generated assertion key is the parent's, shared: every worker publishes the same JWKS.
        auth_before = [metric(await gw.metrics(i), "gateway_requests_total", outcome="auth_endpoint") for i in (0, 1)]
        documents = []
        async with fresh_session() as http:
            for _ in range(20):
                status, document = await get_json(http, f"{gw.url}/_auth/jwks.json")
                assert status == 200
                documents.append(document)
        auth_after = [metric(await gw.metrics(i), "gateway_requests_total", outcome="auth_endpoint") for i in (0, 1)]
        served = [after - before for before, after in zip(auth_before, auth_after, strict=True)]
        assert sum(served) == 20 and all(n > 0 for n in served), f"JWKS fetches per worker: {served}"
        assert all(d == documents[0] for d in documents), documents
        keys = jws.parse_jwks(documents[0])
        assert len(keys) == 1
        # Assertions minted by both workers verify against that one key set.
        for recorded in seen:
            claims = jws.verify(recorded.headers["X-Auth-Assertion"], keys, algorithms={"ES256"})
            assert claims["iss"] == gw.url and claims["aud"] == "upstream"


async def drain_under_load(env: Env, inflight: int) -> None:
    """``inflight`` slow requests under way, SIGTERM: readiness turns 503 "draining" while the listener
    is still open, the listener then closes, every in-flight request still completes, the exit is 0."""
    gw, echo = env.gw, env.echo
    echo.expect = inflight
    tasks = [asyncio.create_task(get_json(env.http, f"{gw.url}/slow/{i}")) for i in range(inflight)]
    try:
        await asyncio.wait_for(echo.arrived.wait(), timeout=5)
        assert echo.slow_started == inflight and echo.slow_answered == 0

        signalled = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)  # the parent only: it forwards the signal to its workers
        answers: list[tuple[float, int, str]] = []  # (seconds after SIGTERM, HTTP status, "status" field)
        closed_after = None
        async with fresh_session() as probe:
            while time.monotonic() - signalled < GRACE:
                try:
                    status, body = await get_json(probe, f"{gw.url}/_auth/readyz")
                except aiohttp.ClientConnectionError:
                    closed_after = time.monotonic() - signalled
                    break
                answers.append((time.monotonic() - signalled, status, body["status"]))
                await asyncio.sleep(0.005)
        # Readiness flips at once (a worker may answer 200 for the few ms before it sees the forwarded
        # signal), then every worker says 503 "draining" until the listener closes.
        seen = f"listener closed after {closed_after}s; readyz answers {[(round(t, 3), s) for t, s, _ in answers]}"
        assert all((s, w) in {(200, "ready"), (503, "draining")} for _, s, w in answers), answers
        late = [s for t, s, _ in answers if t >= 0.3]
        assert len(late) >= 20, f"too few readiness answers from 0.3 s after SIGTERM: {seen}"
        assert set(late) == {503}, f"readyz still ready after the signal: {seen}"
        assert closed_after is not None, "the listener never closed"
        # The drain notice is min(2 s, grace / 2); the slow requests are still under way when it closes.
        assert 1.5 <= closed_after < SLOW_DELAY, f"listener closed {closed_after:.2f}s after SIGTERM"
        assert echo.slow_answered == 0, "a slow request was answered before the listener closed"

        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=GRACE + 2)
    finally:
        for task in tasks:
            task.cancel()
    lost = {i: repr(o) for i, o in enumerate(outcomes) if isinstance(o, BaseException)}
    assert not lost, f"{len(lost)} of {inflight} in-flight requests failed during the drain: {lost}"
    results = [o for o in outcomes if not isinstance(o, BaseException)]
    assert [status for status, _ in results] == [200] * inflight, results
    assert [body["path"] for _, body in results] == [f"/slow/{i}" for i in range(inflight)]
    assert all("X-Auth-Assertion" in body["headers"] for _, body in results)
    # Each reached the upstream once (no resend hid a dropped request) and was answered there.
    assert (echo.slow_started, echo.slow_answered) == (inflight, inflight)

    code = await gw.wait_exit(GRACE + 3 - (time.monotonic() - signalled))
    elapsed = time.monotonic() - signalled
    assert code == 0, f"exit status {code} after {elapsed:.2f}s:\n{gw.log()}"
    await asyncio.sleep(0.2)
    assert not gw.group_alive(), "a worker outlived the parent"
    # Nothing listens any more, on the public port or any metrics port.
    for url in [f"{gw.url}/_auth/healthz"] + [gw.metrics_url(i) for i in range(gw.workers)]:
        try:
            async with fresh_session() as http, http.get(url) as resp:
                raise AssertionError(f"{url} still answers {resp.status} after exit")
        except aiohttp.ClientConnectionError:
            pass
    assert '"level": "error"' not in gw.log(), gw.log()


async def test_sigterm_with_two_workers_loses_no_inflight_request(tmp_path: Path) -> None:
    async with logged_in(tmp_path, workers=2) as env:
        await drain_under_load(env, inflight=20)


async def test_sigterm_with_one_worker_drains_the_same_way(tmp_path: Path) -> None:
    async with logged_in(tmp_path, workers=1) as env:
        await drain_under_load(env, inflight=5)
