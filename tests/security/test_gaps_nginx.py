"""attacks.md J through the shipped nginx front (deploy/nginx/auth_request.conf with real nginx, the real
gateway and the recording echo upstream): T44 "again through nginx" (the smuggling table of test_j_http.py
sent to nginx, which keeps pooled connections to both the gateway and the application) and T45 slow
request bodies (the ``client_body_timeout`` side; slow headers are in tests/forward_auth)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tests.forward_auth.support import NginxStack, running_nginx_stack
from tests.security.helpers import assert_no_traceback, raw_http
from tests.security.test_j_http import SMUGGLING
from tests.support.stack import browser_login

pytestmark = pytest.mark.asyncio(loop_scope="module")

H = b"Host: 127.0.0.1\r\n"
SPOOF = "190001019999"


class Env:
    def __init__(self, ns: NginxStack, session: str) -> None:
        self.ns = ns
        self.session = session

    @property
    def port(self) -> int:
        return self.ns.nginx.port

    @property
    def host_line(self) -> bytes:
        return f"Host: 127.0.0.1:{self.port}\r\n".encode()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env() -> AsyncIterator[Env]:
    async with running_nginx_stack() as ns:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            final = await browser_login(http, f"{ns.url}/private/start")
            assert final.status == 200, await final.text()
            session = next(c.value for c in http.cookie_jar if c.key == "gw_session")
        yield Env(ns, session)


#: More hidden requests behind ambiguous framing: to the application and to the gateway's own endpoints
#: (nginx proxies /_auth/ to the gateway over pooled keep-alive connections).
HIDDEN = b"GET /private/smuggled HTTP/1.1\r\n" + H + b"X-Auth-Ssn: " + SPOOF.encode() + b"\r\n\r\n"
EXTRA: dict[str, bytes] = {
    "CL.TE hiding a private request": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: "
    + str(5 + len(HIDDEN)).encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
    "TE.CL hiding a private request": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
    b"Content-Length: 4\r\n\r\n" + f"{len(HIDDEN):x}".encode() + b"\r\n" + HIDDEN + b"\r\n0\r\n\r\n",
    "CL.TE at the gateway's endpoints": b"POST /_auth/headless/cancel HTTP/1.1\r\n" + H + b"Content-Length: "
    + str(5 + len(HIDDEN)).encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
    "trailer with an identity header": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\nX-Auth-Ssn: " + SPOOF.encode() + b"\r\n\r\n",
}
CASES = {**SMUGGLING, **EXTRA}


async def _follow_ups(env: Env) -> None:
    """Normal requests after the attack: a poisoned pooled connection (to the app or to the gateway) would
    turn them into a 400, a prefixed method ("GPOST") or a request the client never sent."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for i in range(6):
            async with http.get(f"{env.ns.url}/private/follow-{i}", headers={"Cookie": f"gw_session={env.session}"},
                                allow_redirects=False) as resp:
                assert resp.status == 200, (i, resp.status, await resp.text())
            async with http.post(f"{env.ns.url}/public/follow-{i}", data=b"body") as resp:
                assert resp.status == 200, (i, resp.status)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_t44_smuggling_through_nginx_reaches_neither_the_app_nor_the_gateway(env: Env, case: str) -> None:
    """T44 through nginx: at most one answer per attack connection, the application only ever sees the one
    outer request (or nothing), never the hidden request, a client identity header or a trailer as a header,
    and the pooled connections behind nginx stay in sync for the next clients."""
    env.ns.stack.echo.requests.clear()
    # The Host nginx and the gateway serve (with the port), so that the outer request is a public one that
    # really reaches the application when nginx accepts it.
    raw = await raw_http(env.port, CASES[case].replace(H, env.host_line), timeout=2.0)
    assert_no_traceback(raw.text)
    assert len(raw.statuses) <= 1, raw.statuses
    seen = list(env.ns.stack.echo.requests)
    assert len(seen) <= 1, [(r.method, r.path) for r in seen]
    for request in seen:
        assert (request.method, request.path) in (("POST", "/public/x"), ("GET", "/public/x")), request
        assert "X-Auth-Ssn" not in request.headers
        assert b"/private/smuggled" not in request.body or case.endswith("private request")
    if seen and raw.status is not None:
        assert raw.status == 200
    env.ns.stack.echo.requests.clear()
    await _follow_ups(env)
    paths = [(r.method, r.path) for r in env.ns.stack.echo.requests]
    assert paths == [m for i in range(6) for m in (("GET", f"/private/follow-{i}"), ("POST", f"/public/follow-{i}"))]
    for request in env.ns.stack.echo.requests:
        if request.path.startswith("/public/"):
            assert "X-Auth-Ssn" not in request.headers and request.body == b"body"
        else:
            assert request.headers.getall("X-Auth-Ssn") == ["199003152387"]


async def test_t45_stalled_bodies_do_not_block_other_clients(env: Env) -> None:
    """T45: 50 POSTs announcing 1 MB and sending a byte each hold connections, not the server: an
    authenticated request through nginx still completes in < 1 s, and none of the stalled bodies reached
    the application."""
    env.ns.stack.echo.requests.clear()
    writers: list[asyncio.StreamWriter] = []
    try:
        for _ in range(50):
            _, writer = await asyncio.open_connection("127.0.0.1", env.port)
            writer.write(b"POST /public/upload HTTP/1.1\r\n" + env.host_line + b"Content-Length: 1000000\r\n\r\nx")
            await writer.drain()
            writers.append(writer)
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            for _ in range(5):
                started = loop.time()
                async with http.get(f"{env.ns.url}/private/x", headers={"Cookie": f"gw_session={env.session}"}) as resp:
                    assert resp.status == 200
                assert loop.time() - started < 1.0
        assert [r.path for r in env.ns.stack.echo.requests] == ["/private/x"] * 5
    finally:
        for writer in writers:
            writer.close()
