"""attacks.md J: HTTP parser, framing and transport over raw sockets (T44 smuggling, T46 malformed requests,
T47 h2c and WebSocket upgrades before auth)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.security.helpers import assert_no_traceback, raw_http
from tests.support.fake_op import OpStack, fetch, jar, login

pytestmark = pytest.mark.asyncio(loop_scope="module")

H = b"Host: 127.0.0.1\r\n"

#: CL.TE / TE.CL / TE.TE variants, each ambiguous: a correct front end refuses them outright.
SMUGGLING: dict[str, bytes] = {
    "CL.TE": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "TE.CL": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
             b"1\r\nG\r\n0\r\n\r\n",
    "TE chunked, identity": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n"
                            b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nG",
    "TE double space": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n"
                       b"Transfer-Encoding:  chunked\r\n\r\n0\r\n\r\nG",
    "TE space before colon": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n"
                             b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\nG",
    "TE odd case": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n"
                   b"tRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\nG",
    "TE twice": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\nG",
    "TE xchunked": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n"
                   b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\nG",
    "TE vertical tab": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n"
                       b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\nG",
    "CL twice": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nContent-Length: 0\r\n\r\nGGGGGG",
    "CL plus sign": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: +6\r\n\r\nGGGGGG",
    "CL list": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 6, 0\r\n\r\nGGGGGG",
    "CL hex": b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: 0x6\r\n\r\nGGGGGG",
    "chunk extension bare LF": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                               b"1;a\nb\r\nX\r\n0\r\n\r\n",
    "chunk size bare LF": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1\nX\r\n0\r\n\r\n",
    "chunk size overflow": b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                           b"10000000000000001\r\nX\r\n0\r\n\r\n",
    "bare CR in header value": b"POST /public/x HTTP/1.1\r\n" + H + b"X-Abc: \rxTransfer-Encoding: chunked\r\n\r\n"
                               b"0\r\n\r\n",
    "bare LF line ending": b"POST /public/x HTTP/1.1\n" + H + b"Content-Length: 6\nTransfer-Encoding: chunked\n\n"
                           b"0\r\n\r\nG",
    "NUL in header value": b"GET /public/x HTTP/1.1\r\n" + H + b"X-Abc: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(SMUGGLING))
async def test_t44_ambiguous_framing_is_refused_and_nothing_is_smuggled(op_stack: OpStack, case: str) -> None:
    raw = await raw_http(op_stack.port, SMUGGLING[case])
    assert raw.status == 400, raw.text[:300]
    assert raw.statuses == [400], raw.statuses  # one answer: no second request was read from the body
    assert raw.closed
    assert_no_traceback(raw.text)
    assert op_stack.echo.requests == []


async def test_t44_trailers_never_become_headers(op_stack: OpStack) -> None:
    data = (b"POST /public/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Auth-Ssn: 190001019999\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
    raw = await raw_http(op_stack.port, data)
    assert raw.status in (200, 400), raw.text[:300]
    for seen in op_stack.echo.requests:
        assert "X-Auth-Ssn" not in seen.headers
        assert seen.headers.getall("X-Forwarded-For") == ["127.0.0.1"]
        assert seen.body == b"abc"


async def test_t44_a_request_hidden_in_a_body_stays_a_body(op_stack: OpStack) -> None:
    hidden = b"GET /private/x HTTP/1.1\r\n" + H + b"X-Auth-Ssn: 190001019999\r\n\r\n"
    data = (b"POST /public/x HTTP/1.1\r\n" + H + b"Content-Length: " + str(len(hidden)).encode()
            + b"\r\nConnection: close\r\n\r\n" + hidden)
    raw = await raw_http(op_stack.port, data)
    assert raw.statuses == [200]
    assert [(r.method, r.path) for r in op_stack.echo.requests] == [("POST", "/public/x")]
    assert op_stack.echo.requests[0].body == hidden
    assert "X-Auth-Ssn" not in op_stack.echo.requests[0].headers


async def test_t44_pipelined_requests_are_each_authorised(op_stack: OpStack) -> None:
    data = (b"GET /public/a HTTP/1.1\r\n" + H + b"\r\n"
            b"GET /private/x HTTP/1.1\r\n" + H + b"Accept: text/html\r\nX-Auth-Ssn: 190001019999\r\n\r\n"
            b"GET /public/b HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    raw = await raw_http(op_stack.port, data)
    assert raw.statuses == [200, 302, 200], raw.statuses
    assert [r.path for r in op_stack.echo.requests] == ["/public/a", "/public/b"]
    for seen in op_stack.echo.requests:
        assert "X-Auth-Ssn" not in seen.headers


async def test_t44_get_with_a_body_that_looks_like_a_request(op_stack: OpStack) -> None:
    data = (b"GET /public/x HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n"
            b"GET /private/x HTTP/1.1\r\n" + H + b"Accept: text/html\r\nConnection: close\r\n\r\n")
    raw = await raw_http(op_stack.port, data)
    assert raw.statuses == [200, 302]
    assert [r.path for r in op_stack.echo.requests] == ["/public/x"]


# ------------------------------------------------------------------------------------------------ T46

MALFORMED: dict[str, bytes] = {
    "100 KB URL": b"GET /public/" + b"a" * 100_000 + b" HTTP/1.1\r\n" + H + b"\r\n",
    "9 KB header": b"GET /public/x HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 9 * 1024 + b"\r\n\r\n",
    "300 headers": b"GET /public/x HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n",
    "header name with (": b"GET /public/x HTTP/1.1\r\n" + H + b"X-(a): v\r\n\r\n",
    "header name with @": b"GET /public/x HTTP/1.1\r\n" + H + b"X@a: v\r\n\r\n",
    "header name with :": b"GET /public/x HTTP/1.1\r\n" + H + b":x: v\r\n\r\n",
    "header name with space": b"GET /public/x HTTP/1.1\r\n" + H + b"X-Auth-Ssn : 1\r\n\r\n",
    "header name with tab": b"GET /public/x HTTP/1.1\r\n" + H + b"X-Auth-Ssn\t: 1\r\n\r\n",
    "empty header name": b"GET /public/x HTTP/1.1\r\n" + H + b": v\r\n\r\n",
    "obs-fold": b"GET /public/x HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n",
    "obs-fold on a protected header": b"GET /public/x HTTP/1.1\r\n" + H + b"X-A: a\r\n X-Auth-Ssn: 1\r\n\r\n",
    "non-ASCII header name": b"GET /public/x HTTP/1.1\r\n" + H + "X-Tést: 1\r\n\r\n".encode(),
    "HTTP/0.9 request line": b"GET /public/x\r\n\r\n",
    "HTTP/0.9 version": b"GET /public/x HTTP/0.9\r\n\r\n",
    "HTTP/2.0 version on HTTP/1": b"GET /public/x HTTP/2.0\r\n" + H + b"\r\n",
    "HTTP/1.2 version": b"GET /public/x HTTP/1.2\r\n" + H + b"\r\n",
    "NUL in path": b"GET /public/\x00x HTTP/1.1\r\n" + H + b"\r\n",
    "space in path": b"GET /public/a b HTTP/1.1\r\n" + H + b"\r\n",
    "no host": b"GET /public/x HTTP/1.1\r\n\r\n",
    "two hosts": b"GET /public/x HTTP/1.1\r\n" + H + H + b"\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_t46_malformed_requests_get_a_clean_4xx(op_stack: OpStack, case: str) -> None:
    raw = await raw_http(op_stack.port, MALFORMED[case] + b"")
    assert raw.status in (400, 414, 431, 505), (case, raw.data[:200])
    assert_no_traceback(raw.text)
    assert op_stack.echo.requests == []
    async with aiohttp.ClientSession() as http:
        assert (await fetch(http, "GET", f"{op_stack.url}/_auth/healthz")).status == 200


@pytest.mark.parametrize("path", ["/public/x", "/private/x"])
async def test_t46_obs_text_header_values_never_cause_a_500(op_stack: OpStack, path: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        cookie = {c.key: c.value for c in http.cookie_jar}["gw_session"]
    op_stack.echo.requests.clear()
    data = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: gw_session={cookie}\r\n".encode()
            + b"X-Test: caf\xe9 \xff\xfe\r\nConnection: close\r\n\r\n")
    raw = await raw_http(op_stack.port, data)
    assert raw.status in (200, 400, 502), raw.text[:300]
    assert_no_traceback(raw.text)


@pytest.mark.parametrize("path", ["/public/ws", "/private/ws"])
async def test_t46_obs_text_header_values_on_a_websocket_never_cause_a_500(op_stack: OpStack, path: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        cookie = {c.key: c.value for c in http.cookie_jar}["gw_session"]
    data = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: gw_session={cookie}\r\n".encode()
            + b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Test: caf\xe9 \xff\xfe\r\n\r\n")
    raw = await raw_http(op_stack.port, data, timeout=1.5)
    assert raw.status in (101, 400, 502), raw.text[:300]
    assert_no_traceback(raw.text)


# ------------------------------------------------------------------------------------------------ T47

H2C = [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]
WS = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
      ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]


def _request(path: str, headers: list[tuple[str, str]], cookie: str | None = None, accept: str = "text/html") -> bytes:
    head = [("Host", "127.0.0.1"), ("Accept", accept), *headers] + ([("Cookie", cookie)] if cookie else [])
    return f"GET {path} HTTP/1.1\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in head).encode() + b"\r\n"


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
async def test_t47_unauthenticated_upgrades_are_refused_before_any_switch(op_stack: OpStack, accept: str) -> None:
    for headers in (H2C, WS, [("Connection", "Upgrade"), ("Upgrade", "WebSocket, h2c"), *WS[2:]]):
        raw = await raw_http(op_stack.port, _request("/private/x", headers, accept=accept), timeout=1.5)
        assert raw.status in (302, 401), raw.text[:300]
        assert 101 not in raw.statuses
    assert op_stack.echo.requests == []


@pytest.mark.parametrize("path", ["/public/x", "/private/x"])
async def test_t47_h2c_is_never_passed_upstream(op_stack: OpStack, path: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        cookie = {c.key: c.value for c in http.cookie_jar}["gw_session"]
    op_stack.echo.requests.clear()
    raw = await raw_http(op_stack.port, _request(path, [*H2C, ("Connection", "close")], f"gw_session={cookie}"),
                         timeout=1.5)
    assert raw.status in (200, 400), raw.text[:300]
    assert 101 not in raw.statuses
    for seen in op_stack.echo.requests:
        assert "Upgrade" not in seen.headers and "HTTP2-Settings" not in seen.headers
        assert "upgrade" not in seen.headers.get("Connection", "").lower()


async def test_t47_websocket_upgrade_with_session_reaches_upstream_with_identity(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        op_stack.echo.requests.clear()
        async with http.ws_connect(f"{op_stack.url}/private/ws", headers={"X-Auth-Ssn": "190001019999"}) as ws:
            await ws.send_str("ping")
            assert (await ws.receive(timeout=5)).data == "echo:ping"
    seen = op_stack.echo.requests[-1]
    assert seen.headers.getall("X-Auth-Ssn") == ["199003152387"]
    assert len(seen.headers.getall("X-Auth-Assertion")) == 1


# ------------------------------------------------------------------------------------------------ T46 (bodies)

JSON_BODIES: dict[str, bytes] = {
    "nested arrays": b"[" * 1500 + b"]" * 1500,
    "nested objects": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "NaN": b'{"provider": NaN}',
    "huge integer": b'{"provider": ' + b"9" * 4000 + b"}",
    "invalid utf-8": b'{"provider": "\xff\xfe"}',
    "lone surrogate": b'{"provider": "\\ud800"}',
    "duplicate keys": b'{"provider": "dev", "provider": "x"}',
    "not an object": b'"just a string"',
    "empty": b"",
}


@pytest.mark.parametrize("path", ["/_auth/headless/start", "/_auth/headless/cancel", "/_auth/callback/dev",
                                  "/_auth/logout"])
@pytest.mark.parametrize("case", sorted(JSON_BODIES))
async def test_t46_malformed_json_bodies_never_cause_a_500(op_stack: OpStack, path: str, case: str) -> None:
    body = JSON_BODIES[case]
    data = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    raw = await raw_http(op_stack.port, data)
    assert raw.status is not None and 300 <= raw.status < 500, (case, raw.text[:300])
    assert_no_traceback(raw.text)
    assert op_stack.echo.requests == []
