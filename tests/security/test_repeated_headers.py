"""Repeated header field lines (issue 15, item 3; RFC 9110 §5.3), against the real gateway: list-valued headers
are read as all their lines (X-Forwarded-For, Accept-Language), singletons the gateway decides on are refused
with 400 when they repeat (raw sockets: clients merge or refuse them), and behind a real HAProxy with
``option forwardfor`` the client's own X-Forwarded-For line cannot choose its address: not for the upstream's
chain, not for BankID's end_user_ip."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio

from gateway.keys import generate_ec_pem
from tests.security.helpers import RawResponse, assert_no_traceback, raw_http, request_bytes
from tests.security.test_i_headless import PROVIDER, START, headless_provider
from tests.support.fake_op import OpStack, fetch, jar, login, running_op_stack
from tests.support.haproxy import running_haproxy
from tests.support.process import metric

pytestmark = pytest.mark.asyncio(loop_scope="module")

SPOOFED = "203.0.113.9"
#: A loopback address that is not in trusted_proxies (127.0.0.1/32): the "real client" behind HAProxy.
CLIENT = "127.0.0.2"


def _trust_loopback(config: dict[str, Any]) -> None:
    config["trusted_proxies"] = ["127.0.0.1/32"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trusting_stack() -> AsyncIterator[OpStack]:
    """The gateway trusting 127.0.0.1 (HAProxy, or the raw-socket client playing a proxy)."""
    async with running_op_stack(customize=_trust_loopback) as stack:
        yield stack


@pytest.fixture
def trusting(trusting_stack: OpStack) -> OpStack:
    trusting_stack.reset()
    return trusting_stack


async def raw_from(host: str, port: int, data: bytes, *, source: str, timeout: float = 3.0) -> RawResponse:
    """raw_http, from a chosen loopback source address."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    chunks: list[bytes] = []
    try:
        writer.write(data)
        await writer.drain()
        while chunk := await asyncio.wait_for(reader.read(65536), timeout):
            chunks.append(chunk)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.wait_closed()
    return RawResponse(b"".join(chunks), closed=True)


async def _repeated_metric(stack: OpStack, header: str) -> float:
    assert stack.gateway.metrics_url is not None
    async with aiohttp.ClientSession() as http, http.get(stack.gateway.metrics_url) as resp:
        try:
            return metric(await resp.text(), "gateway_repeated_headers_total", header=header)
        except AssertionError:
            return 0.0


# ------------------------------------------------------------------------------- singletons: 400


SINGLETON_REPEATS: dict[str, list[tuple[str, str]]] = {
    "Host": [("Host", "evil.example")],  # request_bytes sends Host: 127.0.0.1 first
    "Origin": [("Origin", "http://127.0.0.1"), ("Origin", "https://evil.example")],
    "Sec-Fetch-Site": [("Sec-Fetch-Site", "same-origin"), ("Sec-Fetch-Site", "cross-site")],
    "Sec-Fetch-Mode": [("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-Mode", "cors")],
    "Authorization": [("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
}


@pytest.mark.parametrize("header", sorted(SINGLETON_REPEATS))
@pytest.mark.parametrize("path", ["/public/x", "/private/x", "/_auth/userinfo"])
async def test_repeated_singleton_is_a_400_and_nothing_is_forwarded(op_stack: OpStack, header: str, path: str) -> None:
    before = await _repeated_metric(op_stack, header.lower())
    raw = await raw_http(op_stack.port, request_bytes(path, headers=SINGLETON_REPEATS[header]))
    assert raw.status == 400, raw.text[:300]
    assert_no_traceback(raw.text)
    assert op_stack.echo.requests == []
    # Two Host lines are already refused by aiohttp's parser (gateway_malformed_requests_total); the others
    # reach the gateway's own check.
    assert await _repeated_metric(op_stack, header.lower()) == before + (header != "Host")


async def test_control_one_line_each_is_forwarded(op_stack: OpStack) -> None:
    once = [(lines[-1][0], lines[-1][1]) for name, lines in SINGLETON_REPEATS.items() if name != "Host"]
    raw = await raw_http(op_stack.port, request_bytes("/public/x", headers=once))
    assert raw.status == 200, raw.text[:300]
    assert len(op_stack.echo.requests) == 1


async def test_repeated_origin_on_logout_is_refused_and_ends_nothing(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        session = (await login(http, op_stack)).set_cookies["gw_session"].value
    headers = [("Cookie", f"gw_session={session}"), ("Origin", op_stack.url), ("Origin", "https://evil.example"),
               ("Content-Length", "0")]
    raw = await raw_http(op_stack.port, request_bytes("/_auth/logout", method="POST", headers=headers))
    assert raw.status == 400, raw.text[:300]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        still = await fetch(http, "GET", f"{op_stack.url}/_auth/userinfo",
                            headers={"Accept": "application/json", "Cookie": f"gw_session={session}"})
    assert still.status == 200


@pytest.mark.parametrize("header", ["X-Forwarded-Proto", "X-Forwarded-Host"])
async def test_repeated_forwarded_singleton_from_a_trusted_proxy_is_a_400(trusting: OpStack, header: str) -> None:
    value = {"X-Forwarded-Proto": ("https", "http"), "X-Forwarded-Host": ("app.example.test", "evil.example")}
    lines = [(header, v) for v in value[header]]
    raw = await raw_http(trusting.port, request_bytes("/public/x", headers=lines))
    assert raw.status == 400, raw.text[:300]
    assert trusting.echo.requests == []
    # Forward-auth keeps its own contract for what it cannot reconstruct: 401, never a pass (attacks.md T20).
    ask = [("X-Forwarded-Uri", "/x"), ("X-Forwarded-Method", "GET"), ("X-Forwarded-Proto", "http"),
           ("X-Forwarded-Host", trusting.url.removeprefix("http://"))]
    verify = await raw_http(trusting.port, request_bytes("/_auth/verify", accept="application/json",
                                                         headers=[*ask, lines[0]]))
    assert verify.status == 401, verify.text[:300]
    assert verify.header("X-Auth-Ssn") is None


@pytest.mark.parametrize("header", ["X-Forwarded-Proto", "X-Forwarded-Host"])
async def test_repeated_forwarded_header_from_a_client_is_ignored_and_dropped(op_stack: OpStack, header: str) -> None:
    """From a peer outside trusted_proxies these headers are never read, only dropped: no reason to refuse."""
    raw = await raw_http(op_stack.port, request_bytes("/public/x", headers=[(header, "a"), (header, "b")]))
    assert raw.status == 200
    written = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": op_stack.url.removeprefix("http://")}[header]
    assert op_stack.echo.requests[-1].headers.getall(header) == [written]  # the gateway's own, once


# ------------------------------------------------------------------------------- list-valued: every line


async def test_every_x_forwarded_for_line_is_read(trusting: OpStack) -> None:
    """The raw client is 127.0.0.1 (trusted): it plays a proxy that appended its own line after the client's."""
    lines = [("X-Forwarded-For", SPOOFED), ("X-Forwarded-For", "198.51.100.7")]
    raw = await raw_http(trusting.port, request_bytes("/public/x", headers=lines))
    assert raw.status == 200, raw.text[:300]
    assert trusting.echo.requests[-1].headers.getall("X-Forwarded-For") == ["198.51.100.7, 127.0.0.1"]


async def test_every_accept_language_line_is_read(op_stack: OpStack) -> None:
    lines = [("Accept-Language", "fr;q=0.1"), ("Accept-Language", "en")]
    raw = await raw_http(op_stack.port, request_bytes("/_auth/login?rd=/x", headers=lines))
    assert raw.status == 302, raw.text[:300]
    query = parse_qs(urlsplit(raw.header("Location") or "").query)
    assert query["ui_locales"] == ["en fr"]


# ------------------------------------------------------------------------------- behind a real HAProxy


async def test_behind_haproxy_the_client_cannot_choose_its_address(trusting: OpStack) -> None:
    """HAProxy (option forwardfor) adds "X-Forwarded-For: 127.0.0.2" after the client's own line. Old reading:
    the first line only, so the gateway believed 203.0.113.9."""
    async with running_haproxy(f"127.0.0.1:{trusting.port}") as haproxy:
        for sent in ([("X-Forwarded-For", SPOOFED)],
                     [("X-Forwarded-For", f"{SPOOFED}, 10.0.0.1"), ("X-Forwarded-For", "127.0.0.1")],
                     []):
            trusting.reset()
            raw = await raw_from("127.0.0.1", haproxy.port, request_bytes("/public/x", headers=sent),
                                 source=CLIENT)
            assert raw.status == 200, (sent, raw.text[:300], haproxy.log())
            chain = trusting.echo.requests[-1].headers.getall("X-Forwarded-For")
            assert chain == [f"{CLIENT}, 127.0.0.1"], (sent, chain)
            assert SPOOFED not in str(list(trusting.echo.requests[-1].headers.items()))


async def test_behind_haproxy_a_logged_in_request_carries_the_real_address(trusting: OpStack) -> None:
    async with running_haproxy(f"127.0.0.1:{trusting.port}") as haproxy:
        async with aiohttp.ClientSession(cookie_jar=jar()) as http:
            session = (await login(http, trusting)).set_cookies["gw_session"].value
        headers = [("X-Forwarded-For", SPOOFED), ("Cookie", f"gw_session={session}"),
                   ("Cookie", "theme=dark")]
        raw = await raw_from("127.0.0.1", haproxy.port, request_bytes("/private/x", headers=headers), source=CLIENT)
        assert raw.status == 200, (raw.text[:300], haproxy.log())
        seen = trusting.echo.requests[-1].headers
        assert seen.getall("X-Forwarded-For") == [f"{CLIENT}, 127.0.0.1"]
        assert len(seen.getall("X-Auth-Ssn")) == 1
        assert seen.getall("Cookie") == ["theme=dark"]


async def test_behind_haproxy_a_repeated_singleton_never_reaches_the_upstream(trusting: OpStack) -> None:
    async with running_haproxy(f"127.0.0.1:{trusting.port}") as haproxy:
        for lines in ([("X-Forwarded-Host", "a.example"), ("X-Forwarded-Host", "b.example")],
                      [("Origin", "http://a.example"), ("Origin", "http://b.example")],
                      [("Authorization", "Bearer a"), ("Authorization", "Bearer b")]):
            raw = await raw_from("127.0.0.1", haproxy.port, request_bytes("/public/x", headers=lines), source=CLIENT)
            assert raw.status == 400, (lines, raw.text[:300])
        assert trusting.echo.requests == []


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def headless_trusting(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpStack]:
    key_file: Path = tmp_path_factory.mktemp("repeated-headless") / "client.pem"
    key_file.write_bytes(generate_ec_pem())
    make_headless = headless_provider(key_file)

    def customize(config: dict[str, Any]) -> None:
        make_headless(config)
        _trust_loopback(config)

    async with running_op_stack(customize=customize) as stack:
        yield stack


async def test_behind_haproxy_bankid_gets_the_real_end_user_ip(headless_trusting: OpStack) -> None:
    stack = headless_trusting
    async with running_haproxy(f"127.0.0.1:{stack.port}") as haproxy:
        connector = aiohttp.TCPConnector(local_addr=(CLIENT, 0))
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar()) as http:
            out = await fetch(http, "POST", haproxy.url + START, json={"provider": PROVIDER, "rd": "/x"},
                              headers={"Accept": "application/json", "Origin": stack.url,
                                       "X-Forwarded-For": SPOOFED})
    assert out.status == 200, (out.body, haproxy.log())
    assert stack.op.headless_starts[-1].form["end_user_ip"] == CLIENT
