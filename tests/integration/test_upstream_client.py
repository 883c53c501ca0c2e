"""The lean upstream client (gateway/upstream.py) against byte-level loopback upstreams: directly through
UpstreamPool, and end to end through the real gateway (proxy.py's use of it)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol
from multidict import CIMultiDict

from gateway.upstream import UpstreamConnectError, UpstreamPool, UpstreamProtocolError, UpstreamResponse
from tests.integration.upstream_raw import (
    RawRequest,
    RawUpstream,
    close_after,
    close_silently,
    never_answer,
    reset,
    response,
)
from tests.support.ports import free_port
from tests.support.stack import Stack, browser_login, running_stack

JSON = {"Accept": "application/json"}


# -- helpers ------------------------------------------------------------------------------------------------
def body_reader(*chunks: bytes) -> StreamReader:
    loop = asyncio.get_running_loop()
    reader = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return reader


@asynccontextmanager
async def pool_for(upstream: RawUpstream, *, read_timeout: float = 5.0) -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(upstream.url, connect_timeout=2.0, read_timeout=read_timeout)
    try:
        yield pool
    finally:
        pool.close()


async def fetch(
    pool: UpstreamPool,
    method: str = "GET",
    target: str = "/",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    *,
    body: StreamReader | None = None,
    length: int | None = None,
) -> tuple[UpstreamResponse, bytes]:
    resp = await pool.request(method, target, CIMultiDict(headers or {}), body=body, body_length=length)
    try:
        data = b"".join([chunk async for chunk in resp.iter_chunks()])
    finally:
        resp.release()
    return resp, data


@asynccontextmanager
async def gateway_to(
    upstream: RawUpstream, *, read: str = "5s", login: bool = False
) -> AsyncIterator[tuple[Stack, aiohttp.ClientSession]]:
    def customize(config: dict) -> None:
        config["upstream"] = upstream.url
        config["upstream_timeouts"] = {"connect": "2s", "read": read}

    async with (
        running_stack(customize=customize) as stack,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        if login:
            final = await browser_login(http, f"{stack.url}/private")
            assert final.status == 200
        yield stack, http


# == 1. request bytes =========================================================================================
async def test_get_head_is_exactly_one_host_and_no_framing_or_client_hop_copies() -> None:
    async with RawUpstream() as up, pool_for(up) as pool:
        sent = [
            ("Host", "evil.example"),
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked"),
            ("Expect", "100-continue"),
            ("Connection", "close"),
            ("X-Keep", "yes"),
        ]
        resp, data = await fetch(pool, "GET", "/a/b?c=1&d=%20", sent)
        assert (resp.status, data) == (200, b"ok")
        expected = f"GET /a/b?c=1&d=%20 HTTP/1.1\r\nHost: 127.0.0.1:{up.port}\r\nX-Keep: yes\r\n\r\n"
        assert up.requests[0].head == expected.encode()
        assert up.requests[0].raw_body == b""


async def test_post_framing_empty_sized_and_chunked() -> None:
    async with RawUpstream() as up, pool_for(up) as pool:
        await fetch(pool, "POST", "/empty", {"Content-Length": "99"})
        empty = up.requests[-1]
        assert empty.values("Content-Length") == ["0"] and empty.raw_body == b""

        await fetch(pool, "POST", "/sized", {"Content-Length": "99"}, body=body_reader(b"hello ", b"world"), length=11)
        sized = up.requests[-1]
        assert sized.values("Content-Length") == ["11"]
        assert sized.values("Transfer-Encoding") == []
        assert sized.raw_body == b"hello world"

        payload = [os.urandom(70_000), b"x", os.urandom(3)]
        await fetch(pool, "PUT", "/chunked", {"Transfer-Encoding": "gzip"}, body=body_reader(*payload), length=None)
        chunked = up.requests[-1]
        assert chunked.values("Transfer-Encoding") == ["chunked"]
        assert chunked.values("Content-Length") == []
        assert chunked.body == b"".join(payload)
        assert chunked.raw_body.endswith(b"0\r\n\r\n")
        assert all(r.values("Host") == [f"127.0.0.1:{up.port}"] for r in up.requests)


@pytest.mark.parametrize(
    "header",
    [("X-Evil", "a\r\nX-Injected: 1"), ("X-Evil", "a\nb"), ("X-Evil", "a\rb"), ("X-Ev\r\nil", "v"), ("X:Evil", "v")],
)
async def test_header_with_cr_lf_is_refused_before_anything_is_written(header: tuple[str, str]) -> None:
    async with RawUpstream() as up, pool_for(up) as pool:
        with pytest.raises(ValueError):
            await pool.request("GET", "/", CIMultiDict([header]), body=None, body_length=None)
        await asyncio.sleep(0.05)
        assert up.connections == 0 and up.requests == []


async def test_request_bytes_through_the_gateway_with_identity_and_chunked_upload() -> None:
    async with RawUpstream() as up, gateway_to(up, login=True) as (stack, http):
        before = len(up.requests)
        async with http.get(f"{stack.url}/page", headers={"X-Auth-Ssn": "forged", "X-Keep": "1"}) as resp:
            assert resp.status == 200
        get = up.requests[before]
        assert get.values("Host") == [f"127.0.0.1:{up.port}"]
        assert get.values("Content-Length") == [] and get.values("Transfer-Encoding") == []
        assert get.values("Connection") == [] and get.values("Expect") == []
        assert get.values("X-Keep") == ["1"]
        assert len(get.values("X-Auth-Ssn")) == 1 and get.values("X-Auth-Ssn") != ["forged"]
        assert get.values("X-Auth-Name") and get.values("X-Auth-Assertion")

        async with http.post(f"{stack.url}/form", data=b"a=1&b=2", headers={"Connection": "keep-alive"}) as resp:
            assert resp.status == 200
        post = up.requests[-1]
        assert post.values("Content-Length") == ["7"] and post.raw_body == b"a=1&b=2"
        assert post.values("Connection") == [] and post.values("Transfer-Encoding") == []

        async with http.post(f"{stack.url}/nobody") as resp:
            assert resp.status == 200
        assert up.requests[-1].values("Content-Length") == ["0"] and up.requests[-1].raw_body == b""

        payload = [os.urandom(40_000) for _ in range(5)]

        async def chunks() -> AsyncIterator[bytes]:
            for part in payload:
                yield part

        async with http.post(f"{stack.url}/upload", data=chunks()) as resp:
            assert resp.status == 200
        upload = up.requests[-1]
        assert upload.values("Transfer-Encoding") == ["chunked"] and upload.values("Content-Length") == []
        assert upload.body == b"".join(payload)
        assert all(r.values("Host") == [f"127.0.0.1:{up.port}"] for r in up.requests)
        assert all(len(r.values("X-Auth-Ssn")) == 1 for r in up.requests[before:])


@pytest.mark.parametrize("value", ["caf\u00e9", "5 \u20ac"], ids=["latin1_char", "non_latin1_char"])
async def test_non_ascii_request_header_bytes_reach_the_upstream_unchanged(value: str) -> None:
    """A header the client sent as UTF-8 reaches the upstream as the same bytes (as it does on aiohttp's
    client, still used for HEAD), and is not a 502."""
    async with RawUpstream() as up, gateway_to(up) as (stack, http):
        async with http.get(f"{stack.url}/public/x", headers={"X-Note": value}) as resp:
            assert resp.status == 200
        assert up.requests[-1].header_bytes("X-Note") == [value.encode()]


async def test_non_ascii_response_header_bytes_reach_the_client_unchanged() -> None:
    up = RawUpstream()
    up.default = "HTTP/1.1 200 OK\r\nX-Disp: r\u00e9sum\u00e9\r\nContent-Length: 2\r\n\r\nok".encode()
    async with up, gateway_to(up) as (stack, http), http.get(f"{stack.url}/public/x") as resp:
        assert resp.status == 200
        assert dict(resp.raw_headers)[b"X-Disp"] == "r\u00e9sum\u00e9".encode()


# == 2. responses =============================================================================================
async def test_response_framings_and_reason_phrase() -> None:
    up = RawUpstream()
    up.script(
        response("201 Created Fine", b"x" * 1000, ("X-A: 1",)),
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1;q="a"\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
        response("204 No Content", b""),
        b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n',
        b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 Really OK\r\nContent-Length: 4\r\n\r\nreal",
        close_after(b"HTTP/1.1 200 OK\r\nX-Close: 1\r\n\r\n" + b"z" * 300_000),
    )
    async with up, pool_for(up) as pool:
        resp, data = await fetch(pool)
        assert (resp.status, resp.reason, data, resp.headers["X-A"]) == (201, "Created Fine", b"x" * 1000, "1")

        resp, data = await fetch(pool)
        assert (resp.status, data) == (200, b"hello world")
        assert "Ext" not in str(resp.headers)

        resp, data = await fetch(pool)
        assert (resp.status, data) == (204, b"")
        resp, data = await fetch(pool)
        assert (resp.status, data) == (304, b"")

        resp, data = await fetch(pool)
        assert (resp.status, resp.reason, data) == (200, "Really OK", b"real")
        assert "X-Interim" not in resp.headers

        resp, data = await fetch(pool)
        assert (resp.status, resp.headers["X-Close"], data) == (200, "1", b"z" * 300_000)
        assert up.connections == 1  # everything before the close-delimited one on one connection


async def test_response_framings_through_the_gateway() -> None:
    up = RawUpstream()
    up.script(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
        response("204 No Content", b""),
        b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n',
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Taken In\r\nContent-Length: 4\r\n\r\nreal",
        close_after(b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 100_000),
    )
    async with up, gateway_to(up) as (stack, http):
        async with http.get(f"{stack.url}/public/chunked") as resp:
            assert (resp.status, await resp.read()) == (200, b"hello")
        async with http.get(f"{stack.url}/public/204") as resp:
            assert (resp.status, await resp.read()) == (204, b"")
        async with http.get(f"{stack.url}/public/304") as resp:
            assert (resp.status, await resp.read(), resp.headers["ETag"]) == (304, b"", '"e"')
        async with http.get(f"{stack.url}/public/continue") as resp:
            assert (resp.status, resp.reason, await resp.read()) == (202, "Taken In", b"real")
        async with http.get(f"{stack.url}/public/close") as resp:
            assert (resp.status, await resp.read()) == (200, b"z" * 100_000)


TRAILERS = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trail\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\nX-Trail: t\r\nSet-Cookie: from-trailer=1\r\n\r\n"
)


async def test_chunked_trailers_are_ignored_not_turned_into_headers() -> None:
    """RFC 9110 §6.5.1: trailer fields are not merged into the header section (aiohttp's client does not)."""
    up = RawUpstream()
    up.script(TRAILERS)
    async with up, pool_for(up) as pool:
        resp, data = await fetch(pool)
        assert (resp.status, data) == (200, b"hello")
        assert "X-Trail" not in resp.headers and "Set-Cookie" not in resp.headers


async def test_chunked_trailers_do_not_reach_the_client_as_headers_through_the_gateway() -> None:
    """A trailer Set-Cookie must not become a response header the browser acts on."""
    up = RawUpstream()
    up.script(TRAILERS)
    async with up, gateway_to(up) as (stack, http), http.get(f"{stack.url}/public/trailers") as resp:
        assert (resp.status, await resp.read()) == (200, b"hello")
        assert "X-Trail" not in resp.headers and "Set-Cookie" not in resp.headers


async def test_304_with_a_content_length_has_no_body_and_is_not_an_error() -> None:
    """RFC 9110 §8.6: a 304 may carry the Content-Length the 200 would have had; there is no body."""
    up = RawUpstream()
    up.script(b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\nContent-Length: 1234\r\n\r\n', response(body=b"next"))
    async with up, pool_for(up) as pool:
        resp, data = await fetch(pool)
        assert (resp.status, data) == (304, b"")
        resp, data = await fetch(pool)
        assert (resp.status, data) == (200, b"next")

    up = RawUpstream()
    up.script(b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\nContent-Length: 1234\r\n\r\n')
    async with (
        up,
        gateway_to(up) as (stack, http),
        http.get(f"{stack.url}/public/cached", headers={"If-None-Match": '"e"', **JSON}) as resp,
    ):
        assert resp.status == 304
        assert resp.headers["ETag"] == '"e"'


# == 3. keep-alive ============================================================================================
async def test_keep_alive_reuses_one_connection_and_connection_close_is_not_reused() -> None:
    up = RawUpstream()
    up.script(response(body=b"1"), response(body=b"2", headers=("Connection: close",)), response(body=b"3"))
    async with up, pool_for(up) as pool:
        assert (await fetch(pool))[1] == b"1"
        assert (await fetch(pool))[1] == b"2"
        assert up.connections == 1
        assert (await fetch(pool))[1] == b"3"
        assert up.connections == 2
        assert [r.connection for r in up.requests] == [0, 0, 1]


async def test_keep_alive_through_the_gateway() -> None:
    async with RawUpstream() as up, gateway_to(up) as (stack, http):
        for _ in range(3):
            async with http.get(f"{stack.url}/public/a") as resp:
                assert resp.status == 200
        assert up.connections == 1


async def test_idle_connection_closed_by_upstream_is_retried_for_bodyless_get_only() -> None:
    up = RawUpstream()
    up.script(response(body=b"first"), close_silently, response(body=b"retried"))
    async with up, pool_for(up) as pool:
        assert (await fetch(pool))[1] == b"first"
        resp, data = await fetch(pool, "GET", "/again")
        assert (resp.status, data) == (200, b"retried")
        assert [(r.connection, r.target) for r in up.requests] == [(0, "/"), (0, "/again"), (1, "/again")]

    up = RawUpstream()
    up.script(response(body=b"first"), reset, response(body=b"retried"))
    async with up, pool_for(up) as pool:
        await fetch(pool)
        assert (await fetch(pool, "GET", "/again"))[1] == b"retried"

    up = RawUpstream()
    up.script(response(body=b"first"), close_silently, response(body=b"must not come"))
    async with up, pool_for(up) as pool:
        await fetch(pool)
        with pytest.raises(UpstreamProtocolError):
            await fetch(pool, "POST", "/pay", body=body_reader(b"amount=100"), length=10)
        assert [r.target for r in up.requests] == ["/", "/pay"]


async def test_idle_connection_closed_meanwhile_is_dropped_from_the_pool() -> None:
    async with RawUpstream() as up, pool_for(up) as pool:
        await fetch(pool)
        await up.close_idle_connections()
        resp, data = await fetch(pool)
        assert (resp.status, data) == (200, b"ok")
        assert up.connections == 2


async def test_retry_through_the_gateway_get_recovers_post_with_body_is_a_502() -> None:
    up = RawUpstream()
    async with up, gateway_to(up) as (stack, http):
        async with http.get(f"{stack.url}/public/warm") as resp:
            assert resp.status == 200
        up.script(close_silently)
        async with http.get(f"{stack.url}/public/get") as resp:
            assert (resp.status, await resp.read()) == (200, b"ok")
        assert [r.target for r in up.requests[-2:]] == ["/public/get", "/public/get"]

        up.script(close_silently)
        async with http.post(f"{stack.url}/public/post", data=b"once-only", headers=JSON) as resp:
            assert resp.status == 502
            assert (await resp.json())["error"] == "upstream_error"
        assert [r.target for r in up.requests].count("/public/post") == 1


# == 4. failures ==============================================================================================
async def test_connection_refused() -> None:
    pool = UpstreamPool(f"http://127.0.0.1:{free_port()}", connect_timeout=2.0, read_timeout=2.0)
    with pytest.raises(UpstreamConnectError):
        await pool.request("GET", "/", CIMultiDict(), body=None, body_length=None)
    pool.close()


async def test_connection_refused_through_the_gateway_is_a_502_without_identity() -> None:
    up = RawUpstream()
    async with up, gateway_to(up, login=True) as (stack, http):
        await up.__aexit__(None, None, None)
        await asyncio.sleep(0.05)
        async with http.get(f"{stack.url}/private", headers={"Accept": "text/html"}) as resp:
            assert resp.status == 502
            page = await resp.text()
        assert "\u00c5sa" not in page and "%C3%85sa" not in page and "190" not in page and "Traceback" not in page


async def test_read_timeout() -> None:
    release = asyncio.Event()
    up = RawUpstream()
    up.script(never_answer(release))
    async with up, pool_for(up, read_timeout=0.3) as pool:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/", CIMultiDict(), body=None, body_length=None)
        assert time.monotonic() - started < 0.3 + 3
        release.set()


async def test_read_timeout_through_the_gateway_is_a_504() -> None:
    release = asyncio.Event()
    up = RawUpstream()
    up.script(never_answer(release))
    async with up, gateway_to(up, read="300ms") as (stack, http):
        started = time.monotonic()
        async with http.get(f"{stack.url}/public/slow", headers=JSON) as resp:
            assert resp.status == 504
            assert (await resp.json())["error"] == "upstream_timeout"
        assert time.monotonic() - started < 0.3 + 3
        release.set()


MALFORMED = {
    "bad_status_line": b"HTTP/1.1 OK 200\r\nContent-Length: 2\r\n\r\nok",
    "not_http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "bare_lf_in_headers": b"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n\nok",
    "bare_lf_after_one_header": b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok",
    "cl_and_te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "differing_cls": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    "obs_fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok",
    "bad_chunk_size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
    # The upstream is untrusted input too (issue 15, item 6): a head without end is refused, not buffered.
    "too_many_headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300))
    + b"Content-Length: 2\r\n\r\nok",
    "head_too_large": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\nContent-Length: 2\r\n\r\nok",
    "endless_interim_heads": (b"HTTP/1.1 103 Early Hints\r\nLink: " + b"b" * 8000 + b"\r\n\r\n") * 11
    + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_response_is_a_protocol_error_and_the_connection_is_not_reused(case: str) -> None:
    up = RawUpstream()
    up.script(response(body=b"warm"), MALFORMED[case], response(body=b"after"))
    async with up, pool_for(up) as pool:
        await fetch(pool)
        with pytest.raises(UpstreamProtocolError):
            await fetch(pool)
        _resp, data = await fetch(pool)
        assert data == b"after"
        assert up.requests[-1].connection == 1 and up.connections == 2


@pytest.mark.parametrize("case", ["bad_status_line", "bare_lf_in_headers", "cl_and_te", "differing_cls", "obs_fold",
                                  "too_many_headers", "head_too_large"])
async def test_malformed_response_through_the_gateway_is_a_502(case: str) -> None:
    up = RawUpstream()
    up.script(MALFORMED[case])
    async with up, gateway_to(up) as (stack, http):
        async with http.get(f"{stack.url}/public/bad", headers=JSON) as resp:
            assert resp.status == 502
            assert (await resp.json())["error"] == "upstream_error"
        async with http.get(f"{stack.url}/public/good") as resp:
            assert (resp.status, await resp.read()) == (200, b"ok")
        assert up.requests[-1].connection == 1


async def test_short_body_then_close() -> None:
    up = RawUpstream()
    up.script(close_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-10-by"))
    async with up, pool_for(up) as pool:
        resp = await pool.request("GET", "/", CIMultiDict(), body=None, body_length=None)
        with pytest.raises(UpstreamProtocolError):
            await resp.read_exactly(100)
        resp.release()


async def test_short_body_through_the_gateway_small_is_502_big_cuts_the_connection() -> None:
    up = RawUpstream()
    up.script(
        close_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-10-by"),
        close_after(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + b"b" * 500_000),
        close_after(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
    )
    async with up, gateway_to(up) as (stack, http):
        async with http.get(f"{stack.url}/public/small", headers=JSON) as resp:
            assert resp.status == 502
        async with http.get(f"{stack.url}/public/big") as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        async with http.get(f"{stack.url}/public/chunked") as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        async with http.get(f"{stack.url}/public/fine") as resp:  # the gateway itself is fine
            assert (resp.status, await resp.read()) == (200, b"ok")


async def test_big_body_is_flow_controlled_not_buffered() -> None:
    big = os.urandom(32 * 1024 * 1024)
    up = RawUpstream()
    writers: list[asyncio.StreamWriter] = []

    async def send_big(_request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writers.append(writer)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(big)}\r\n\r\n".encode() + big)
        await writer.drain()
        return True

    up.script(send_big)
    async with up, pool_for(up, read_timeout=2.0) as pool:
        resp = await pool.request("GET", "/", CIMultiDict(), body=None, body_length=None)
        await asyncio.sleep(0.5)  # nobody reads: the client must stop reading the socket
        # At most the high-water mark (64 KiB) plus what one socket read brought (up to 256 KiB).
        assert resp._connection.buffered < 320 * 1024
        assert writers[0].transport.get_write_buffer_size() > 0  # the upstream is held back
        await asyncio.sleep(2.5)  # longer than read_timeout: a slow reader is not the upstream's delay
        received = bytearray()
        async for chunk in resp.iter_chunks():
            received += chunk
        resp.release()
        assert bytes(received) == big


async def test_big_body_streams_intact_to_a_slow_reader_through_the_gateway() -> None:
    big = os.urandom(6 * 1024 * 1024)
    up = RawUpstream()
    up.script(response(body=big))
    async with up, gateway_to(up) as (stack, http):
        async with http.get(f"{stack.url}/public/big") as resp:
            assert resp.status == 200 and resp.content_length == len(big)
            received = bytearray()
            async for chunk in resp.content.iter_chunked(256 * 1024):
                received += chunk
                await asyncio.sleep(0.01)
        assert bytes(received) == big
        async with http.get(f"{stack.url}/public/after") as resp:
            assert (resp.status, await resp.read()) == (200, b"ok")
        assert up.connections == 1


# == 5. response splitting ====================================================================================
@pytest.mark.parametrize(
    "value",
    [b"a\rSet-Cookie: evil=1", b"a\r\rSet-Cookie: evil=1", b"a\x00b"],
    ids=["bare_cr", "double_cr", "nul"],
)
async def test_upstream_header_cannot_inject_a_client_response_header(value: bytes) -> None:
    crafted = b"HTTP/1.1 200 OK\r\nX-A: " + value + b"\r\nContent-Length: 2\r\n\r\nok"
    up = RawUpstream()
    up.script(crafted)
    async with up, pool_for(up) as pool:
        with pytest.raises(UpstreamProtocolError):
            await fetch(pool)

    up = RawUpstream()
    up.script(crafted)
    async with up, gateway_to(up) as (stack, http), http.get(f"{stack.url}/public/split", headers=JSON) as resp:
        assert resp.status == 502
        assert "evil" not in resp.headers.get("Set-Cookie", "")
        assert "X-A" not in resp.headers
