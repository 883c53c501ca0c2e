"""X-Request-Id and the access log on the real gateway: a trusted proxy's id follows the request to the
application and into the log; a client's own never does; two from a proxy are refused, not picked; the line
names the client the gateway believes and never a national ID in the path."""

from __future__ import annotations

import json
import os
from typing import Any

import aiohttp

from gateway.access_log import AccessLog
from gateway.runtime import RUNTIME
from tests.support.stack import browser_login, running_stack


def trusting(config: dict[str, Any]) -> None:
    config["trusted_proxies"] = ["127.0.0.1/32"]


def untrusting(config: dict[str, Any]) -> None:
    config["trusted_proxies"] = ["10.9.9.9/32"]


def capture(stack: Any) -> tuple[int, AccessLog]:
    r, w = os.pipe()
    rt = stack.gateway.app[RUNTIME]
    rt.access_log = AccessLog(fd=w, on_drop=rt.metrics.log_lines_dropped.inc)
    return r, rt.access_log


def lines(fd: int, log: AccessLog) -> list[dict[str, Any]]:
    log.flush()  # lines are written every 50 ms: take what is buffered now
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 1 << 20)
    except BlockingIOError:
        return []
    return [json.loads(x) for x in data.decode().splitlines()]


async def test_a_trusted_proxys_request_id_reaches_the_app_and_the_log() -> None:
    async with running_stack(customize=trusting) as stack, aiohttp.ClientSession() as http:
        fd, log = capture(stack)
        headers = {"X-Request-Id": "ingress-7f3a", "X-Forwarded-For": "198.51.100.7"}
        async with http.get(f"{stack.url}/public/x", headers=headers) as resp:
            assert resp.status == 200
        seen = stack.echo.requests[-1]
        assert seen.headers.getall("X-Request-Id") == ["ingress-7f3a"]
        (line,) = [e for e in lines(fd, log) if e["path"] == "/public/x"]
        assert line["request_id"] == "ingress-7f3a" and line["client"] == "198.51.100.7"
        assert line["upstream_status"] == 200 and line["route"] == "default" and line["outcome"] == "public"


async def test_a_clients_request_id_is_replaced() -> None:
    async with running_stack(customize=untrusting) as stack, aiohttp.ClientSession() as http:
        fd, log = capture(stack)
        async with http.get(f"{stack.url}/public/x", headers={"X-Request-Id": "chosen-by-client"}) as resp:
            assert resp.status == 200
        seen = stack.echo.requests[-1]
        (sent,) = seen.headers.getall("X-Request-Id")
        assert sent != "chosen-by-client" and len(sent) == 32
        (line,) = lines(fd, log)
        assert line["request_id"] == sent and line["client"] == "127.0.0.1"


async def test_two_request_ids_from_a_trusted_proxy_are_refused() -> None:
    async with running_stack(customize=trusting) as stack, aiohttp.ClientSession() as http:
        fd, log = capture(stack)
        before = len(stack.echo.requests)
        async with http.get(
            f"{stack.url}/public/x", headers=[("X-Request-Id", "a"), ("X-Request-Id", "b")]
        ) as resp:
            assert resp.status == 400
        assert len(stack.echo.requests) == before
        (line,) = lines(fd, log)
        assert line["status"] == 400 and line["request_id"] is None


async def test_the_log_masks_national_ids_and_off_means_off() -> None:
    async with running_stack() as stack, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        fd, log = capture(stack)
        assert (await browser_login(http, f"{stack.url}/people/199003152387")).status == 200
        logged = lines(fd, log)
        assert "199003152387" not in json.dumps(logged)
        assert any(e["path"] == "/people/19900315****" and e["outcome"] == "proxied" for e in logged)
        log.enabled = False
        async with http.get(f"{stack.url}/public/y") as resp:
            assert resp.status == 200
        assert lines(fd, log) == []


async def test_access_log_off_in_the_config() -> None:
    def off(config: dict[str, Any]) -> None:
        config["access_log"] = False  # YAML's bare off

    async with running_stack(customize=off) as stack:
        assert stack.gateway.app[RUNTIME].access_log.enabled is False


async def test_a_session_too_large_for_a_cookie_is_refused_loudly_not_dropped(
    caplog: Any,
) -> None:
    """Issue 16 item 11: with the cookie store, a session whose cookie would pass 4096 bytes (here a provider's
    5 KB refresh token) is refused with an error that names Redis, never a cookie the browser drops."""
    import secrets

    import pytest
    from aiohttp import web

    from gateway.errors import SessionTooLargeError
    from gateway.protocol.claims import Identity
    from gateway.session.cookies import write_session
    from gateway.session.model import Session

    async with running_stack() as stack:
        rt = stack.gateway.app[RUNTIME]
        identity = Identity(values={"sub": "s-1", "idp": "dev", "name": "Åsa Öberg"})
        now = rt.clock()
        times = {"now": now, "lifetime": 3600, "idle_timeout": 600, "refresh_at": now + 300}
        small = Session.new(identity, refresh_token=secrets.token_urlsafe(100), **times)

        fine = web.Response()
        await write_session(fine, rt, small)
        assert len(fine.headers["Set-Cookie"]) < 4096
        big = Session.new(identity, refresh_token=secrets.token_urlsafe(4000), **times)
        with pytest.raises(SessionTooLargeError):
            await write_session(web.Response(), rt, big)
    assert any("set session.store to a Redis URL" in str(getattr(r, "fields", "")) for r in caplog.records)
