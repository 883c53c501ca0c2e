"""Forward one request to the upstream and stream the answer back (web layer).

Bodies stream both ways without buffering; hop-by-hop headers (and every header the client named in
Connection) are dropped; the gateway writes X-Forwarded-*; WebSockets are relayed after the auth
decision; any other Upgrade (h2c) is never passed on (attacks.md T47).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway import logs
from gateway.assertion import normalize_header_name
from gateway.errors import UpstreamError
from gateway.forwarded import ClientView
from gateway.idp.diagnostics import failure_cause, origin
from gateway.metrics import Metrics
from gateway.protocol.cookie_header import parse_cookie_lines
from gateway.protocol.field_lines import joined
from gateway.upstream import UpstreamPool, UpstreamResponse

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "http2-settings",
        "host",
    }
)
_RESPONSE_DROP = HOP_BY_HOP | {"content-length"}
_COOKIE_PREFIXES = ("__host-", "__secure-")
CHUNK = 64 * 1024
#: The upstream's status and milliseconds to its response head (the access log's upstream fields).
UPSTREAM_ANSWER = web.RequestKey("upstream_answer", tuple)
SMALL_BODY = 64 * 1024


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"
    public_message = "The application behind the gateway took too long to answer."


def connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> set[str]:
    """Header names listed in Connection: hop-by-hop for this hop only (RFC 9110 §7.6.1)."""
    return {t.strip().lower() for v in headers.getall(hdrs.CONNECTION, []) for t in v.split(",") if t.strip()}


def strip_cookies(cookie_lines: Iterable[str], drop: frozenset[str]) -> str | None:
    """Every Cookie line of the request as one line without the gateway's own cookies (``drop``: the
    spellings from gateway_cookie_names); None when nothing is left. The same reader as every decision
    (protocol/cookie_header.py): a piece the application could take for a gateway cookie never reaches it."""
    return parse_cookie_lines(cookie_lines).without(drop)


def build_upstream_headers(
    incoming: Iterable[tuple[str, str]],
    *,
    protected: frozenset[str],
    own_cookies: frozenset[str],
    identity: tuple[tuple[str, str], ...],
    client: ClientView,
    connection_tokens: set[str],
    request_id: str | None = None,
) -> CIMultiDict[str]:
    """``own_cookies``: the gateway's cookie names; every spelling of them (gateway_cookie_names) is removed
    from the Cookie lines, which travel on as one line (RFC 9113 §8.2.3)."""
    out: CIMultiDict[str] = CIMultiDict()
    cookies: list[str] = []
    for name, value in incoming:
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in connection_tokens or normalize_header_name(name) in protected:
            continue
        if lowered == "cookie":
            cookies.append(value)
            continue
        out.add(name, value)
    remaining = strip_cookies(cookies, gateway_cookie_names(own_cookies)) if cookies else None
    if remaining:
        out["Cookie"] = remaining
    # What the gateway believes (forwarded.py), never the client's own part of the chain (attacks.md T08).
    out["X-Forwarded-For"] = client.chain or client.address
    out["X-Forwarded-Proto"] = client.proto
    out["X-Forwarded-Host"] = client.host
    if request_id is not None:  # replaces a client's own: only the gateway's (or a trusted proxy's) travels on
        out["X-Request-Id"] = request_id
    for name, value in identity:
        out[name] = value
    return out


@functools.lru_cache(maxsize=16)
def gateway_cookie_names(own_cookies: frozenset[str]) -> frozenset[str]:
    """Every spelling of the gateway's cookie names a Set-Cookie could use: lower case, with and without
    the __Host-/__Secure- prefixes (browsers compare names exactly, but a variant is still ours)."""
    bases = set()
    for name in own_cookies:
        lowered = name.lower()
        for prefix in _COOKIE_PREFIXES:
            lowered = lowered.removeprefix(prefix)
        bases.add(lowered)
    return frozenset(prefix + base for base in bases for prefix in ("", *_COOKIE_PREFIXES))


def is_gateway_set_cookie(value: str, names: frozenset[str]) -> bool:
    """A Set-Cookie line (RFC 6265 §5.2: the name is what comes before the first '=') naming our cookie."""
    return value.partition(";")[0].partition("=")[0].strip().lower() in names


def is_websocket_upgrade(request: web.Request) -> bool:
    return (
        request.method == "GET"
        and request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        and "upgrade" in connection_tokens(request.headers)
    )


class _AiohttpUpstream:
    """aiohttp's client response behind the same small interface as upstream.UpstreamResponse."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.reason = response.reason or ""
        self.headers = response.headers
        self.content_length = response.content_length

    async def read_exactly(self, size: int) -> bytes:
        return await self._response.content.readexactly(size)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_chunked(CHUNK):
            yield chunk

    def release(self) -> None:
        self._response.release()


def _uses_pool(request: web.Request) -> bool:
    """Requests the lean client sends; HEAD and Expect stay on aiohttp's (see upstream.py)."""
    return request.method != "HEAD" and hdrs.EXPECT not in request.headers


async def _send(
    request: web.Request,
    *,
    http: aiohttp.ClientSession,
    pool: UpstreamPool | None,
    url: URL,
    headers: CIMultiDict[str],
    timeouts: aiohttp.ClientTimeout,
) -> UpstreamResponse | _AiohttpUpstream:
    has_body = request.body_exists
    if pool is not None and _uses_pool(request):
        return await pool.request(
            request.method,
            url.raw_path_qs,
            headers,
            body=request.content if has_body else None,
            body_length=request.content_length if has_body else None,
        )
    response = await http.request(
        request.method,
        url,
        headers=headers,
        data=request.content if has_body else None,
        allow_redirects=False,
        timeout=timeouts,
        auto_decompress=False,
    )
    return _AiohttpUpstream(response)


def _log_upstream_failed(url: URL, exc: BaseException) -> None:
    """The one line for a 502/504 before any answer: the upstream's origin (never the path or query, which
    may carry the person's data) and the cause (refused, dns, timeout, ...)."""
    logs.event("upstream_failed", logging.WARNING, upstream=origin(url), **failure_cause(exc))


async def forward(
    request: web.Request,
    *,
    http: aiohttp.ClientSession,
    target: str,
    headers: CIMultiDict[str],
    timeouts: aiohttp.ClientTimeout,
    metrics: Metrics,
    before_prepare: Callable[[web.StreamResponse], None] | None = None,
    pool: UpstreamPool | None = None,
    own_cookie_names: frozenset[str] = frozenset(),
) -> web.StreamResponse:
    """``own_cookie_names``: from gateway_cookie_names(); a Set-Cookie for one of them is dropped."""
    url = URL(target, encoded=True)
    if is_websocket_upgrade(request):
        return await _relay_websocket(request, http=http, url=url, headers=headers)
    started = time.perf_counter()
    try:
        upstream = await _send(request, http=http, pool=pool, url=url, headers=headers, timeouts=timeouts)
    except TimeoutError as exc:
        metrics.upstream_errors.labels("timeout").inc()
        _log_upstream_failed(url, exc)
        raise UpstreamTimeoutError("upstream_timeout") from exc
    except (aiohttp.ClientError, ConnectionError, ValueError) as exc:
        metrics.upstream_errors.labels("connect").inc()
        _log_upstream_failed(url, exc)
        raise UpstreamError("upstream_unreachable") from exc
    took = time.perf_counter() - started
    metrics.upstream_duration.observe(took)
    request[UPSTREAM_ANSWER] = (upstream.status, round(took * 1000, 2))
    try:
        # 204 and 304 have no body, whatever Content-Length says (RFC 9110 §8.6).
        length = None if upstream.status in (204, 304) else upstream.content_length
        small = length is not None and length <= SMALL_BODY and request.method != "HEAD"
        # A small body of known length is read first and sent with the headers in one write; bigger or
        # unknown-length bodies stream chunk by chunk.
        response: web.StreamResponse = (
            web.Response(status=upstream.status, reason=upstream.reason)
            if small
            else web.StreamResponse(status=upstream.status, reason=upstream.reason)
        )
        drop = _RESPONSE_DROP | connection_tokens(upstream.headers)
        for name, value in upstream.headers.items():
            lowered = name.lower()
            if lowered in drop:
                continue
            if lowered == "set-cookie" and is_gateway_set_cookie(value, own_cookie_names):
                # The application must not set, replace or clear the gateway's session or login state
                # (session fixation, or one app logging the person out of all of them).
                metrics.upstream_headers_refused.labels("set_cookie").inc()
                continue
            response.headers.add(name, value)
        if not small and length is not None and request.method != "HEAD":
            response.content_length = length
        if before_prepare is not None:
            before_prepare(response)
        if small:
            try:
                body = await upstream.read_exactly(length or 0)
            except (TimeoutError, aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError) as exc:
                metrics.upstream_errors.labels("body").inc()
                raise UpstreamError("upstream_body") from exc
            assert isinstance(response, web.Response)
            response.body = body
            return response
        try:
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in upstream.iter_chunks():
                    await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            # The client went away (aiohttp's ClientConnectionResetError is one too): nothing to send, and
            # not an upstream failure.
            return response
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            # The upstream failed mid-body. Headers are already on the wire: all we can do is cut the connection.
            metrics.upstream_errors.labels("body").inc()
            if request.transport is not None:
                request.transport.close()
        return response
    finally:
        upstream.release()


async def _relay_websocket(
    request: web.Request, *, http: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str]
) -> web.StreamResponse:
    for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"):
        headers.popall(name, None)
    offered = joined(request.headers, "Sec-WebSocket-Protocol") or ""  # a list: every line (RFC 6455 §11.3.4)
    protocols = [p.strip() for p in offered.split(",") if p.strip()]
    try:
        upstream_ws = await http.ws_connect(url, headers=headers, protocols=protocols, autoping=False)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise UpstreamError("upstream_websocket_failed") from exc
    client_ws = web.WebSocketResponse(protocols=[upstream_ws.protocol] if upstream_ws.protocol else (), autoping=False)
    await client_ws.prepare(request)

    async def pump(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        async for message in source:
            if message.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.PING:
                await sink.ping(message.data)
            elif message.type == aiohttp.WSMsgType.PONG:
                await sink.pong(message.data)
        await sink.close()

    tasks = [asyncio.ensure_future(pump(client_ws, upstream_ws)), asyncio.ensure_future(pump(upstream_ws, client_ws))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await upstream_ws.close()
        await client_ws.close()
    return client_ws
