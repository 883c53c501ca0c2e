"""The proxy hop with a real upstream: streaming, WebSockets, hop-by-hop headers, failures, metrics."""

from __future__ import annotations

import asyncio
import os

import aiohttp
from aiohttp import web

from tests.support.ports import free_port
from tests.support.stack import browser_login, running_stack


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)


async def test_large_bodies_stream_both_ways() -> None:
    async with running_stack() as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        await browser_login(http, f"{stack.url}/private")
        stack.echo.big_body = os.urandom(3 * 1024 * 1024)
        async with http.get(f"{stack.url}/big") as resp:
            assert resp.status == 200
            assert await resp.read() == stack.echo.big_body

        async def chunks():  # a chunked upload of 2 MiB, never known in full to the client
            for _ in range(32):
                yield os.urandom(64 * 1024)

        async with http.post(f"{stack.url}/upload", data=chunks()) as resp:
            assert resp.status == 200
            assert (await resp.json())["body_length"] == 2 * 1024 * 1024
        assert stack.echo.requests[-1].headers.get("Transfer-Encoding") == "chunked"


async def test_hop_by_hop_and_forwarded_headers_are_written_by_the_gateway() -> None:
    async with running_stack() as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        await browser_login(http, f"{stack.url}/private")
        headers = {
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Upgrade": "h2c",
            "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA",
            "X-Forwarded-For": "10.9.9.9",
            "X-Forwarded-Host": "evil.example",
            "X-Real-IP": "10.9.9.9",
            "X-Keep-Me": "yes",
        }
        async with http.get(f"{stack.url}/hop", headers=headers) as resp:
            assert resp.status == 200
        seen = stack.echo.requests[-1].headers
        for name in ("X-Secret-Hop", "Keep-Alive", "TE", "Upgrade", "HTTP2-Settings", "X-Real-IP"):
            assert name not in seen, name
        assert seen["X-Keep-Me"] == "yes"
        assert seen.getall("X-Forwarded-For") == ["127.0.0.1"]
        assert seen["X-Forwarded-Host"] == stack.url.removeprefix("http://")
        assert seen["X-Forwarded-Proto"] == "http"


async def test_websocket_is_relayed_only_after_authentication() -> None:
    async with running_stack() as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        try:
            await http.ws_connect(f"{stack.url}/ws")
            raise AssertionError("an unauthenticated WebSocket handshake must not succeed")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 401
        assert stack.echo.requests == []
        await browser_login(http, f"{stack.url}/private")
        async with http.ws_connect(f"{stack.url}/ws", headers={"X-Auth-Ssn": "190001019999"}) as ws:
            await ws.send_str("hello")
            message = await ws.receive(timeout=5)
            assert message.data == "echo:hello"
        handshake = stack.echo.requests[-1]
        assert handshake.path == "/ws"
        assert handshake.headers.getall("X-Auth-Ssn") != ["190001019999"]
        assert len(handshake.headers.getall("X-Auth-Ssn")) == 1
        assert "X-Auth-Assertion" in handshake.headers


async def test_upstream_down_is_a_502_page_without_identity() -> None:
    dead_port = free_port()

    def customize(config: dict) -> None:
        config["upstream"] = f"http://127.0.0.1:{dead_port}"

    async with running_stack(customize=customize) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        final = await browser_login(http, f"{stack.url}/private")
        assert final.status == 502
        body = await final.text()
        assert "Åsa" not in body and "%C3%85sa" not in body and "Traceback" not in body
        async with aiohttp.ClientSession() as plain, plain.get(stack.gateway.metrics_url) as resp:
            assert 'gateway_upstream_errors_total{kind="connect"} 1.0' in await resp.text()


async def test_slow_upstream_is_a_504() -> None:
    release = asyncio.Event()

    async def slow(_request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    def customize(config: dict) -> None:
        config["upstream"] = f"http://127.0.0.1:{port}"
        config["upstream_timeouts"] = {"connect": "2s", "read": "300ms"}

    try:
        async with running_stack(customize=customize) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
            await browser_login(http, f"{stack.url}/private")
            async with http.get(f"{stack.url}/slow", headers={"Accept": "application/json"}) as resp:
                assert resp.status == 504
                assert (await resp.json())["error"] == "upstream_timeout"
    finally:
        release.set()
        await runner.cleanup()


async def test_api_client_without_session_gets_401_json_and_nothing_is_forwarded() -> None:
    async with running_stack() as stack, aiohttp.ClientSession() as http:
        for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"):
            async with http.request(
                method, f"{stack.url}/api/things?id=1", headers={"Accept": "application/json"}
            ) as resp:
                assert resp.status == 401, method
                if method != "HEAD":
                    body = await resp.json()
                    assert body["error"] == "unauthenticated"
                    assert body["login_url"] == f"{stack.url}/_auth/login?rd=%2Fapi%2Fthings%3Fid%3D1"
        assert stack.echo.requests == []


async def test_metrics_count_outcomes_and_logins_on_the_metrics_listener_only() -> None:
    async with running_stack() as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        await browser_login(http, f"{stack.url}/private")
        async with http.get(f"{stack.url}/healthz"):
            pass
        async with http.get(f"{stack.url}/metrics") as resp:
            assert resp.status == 200  # /metrics on the public port is just an upstream path, behind auth
        assert stack.echo.requests[-1].path == "/metrics"
        async with aiohttp.ClientSession() as plain, plain.get(stack.gateway.metrics_url) as resp:
            text = await resp.text()
        assert 'gateway_requests_total{outcome="proxied"} 2.0' in text
        assert 'gateway_requests_total{outcome="public"} 1.0' in text
        assert 'gateway_requests_total{outcome="redirected_to_login"} 1.0' in text
        assert 'gateway_logins_completed_total{provider="dev"} 1.0' in text
        assert 'gateway_idp_request_duration_seconds_count{endpoint="token",outcome="ok",provider="dev"} 1.0' in text
        assert 'gateway_jwks_refreshes_total{outcome="ok",provider="dev"}' in text
