"""A lean HTTP/1.1 client for the hop to the upstream (web layer, used by proxy.py).

Why not aiohttp's client: on this project's benchmark machine the aiohttp server with aiohttp's client
proxies ~2,400 small responses a second on one core, the same server with a plain pooled connection
~4,300: the client, not the server, is most of the cost of a proxied request. This client does only
what the proxy needs: one origin, pooled keep-alive connections, the request written in one piece, the
response parsed by llhttp (httptools, strict: no obs-fold, no bare LF, one framing), bodies streamed
with flow control both ways, connect and read timeouts. HEAD, WebSocket upgrades and requests that
expect ``100 Continue`` stay on aiohttp's client (llhttp cannot be told that a response answers HEAD).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools
from aiohttp import StreamReader
from multidict import CIMultiDict

#: Request methods that carry no body unless the client sent one (no Content-Length: 0 for them).
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"})
#: Headers this client writes itself; copies from the caller are dropped.
_OWN = frozenset({"host", "content-length", "transfer-encoding", "expect", "connection"})
#: Body bytes held per connection before the upstream socket stops being read. 256 KiB gave ~15% more
#: 1 MiB responses a second in bench/ but 32 MB more RSS at 50 connections: memory per slow client wins.
_HIGH_WATER = 64 * 1024
_MAX_IDLE = 256
#: The upstream is untrusted input too: a response head beyond these is refused (502), not buffered without
#: end. aiohttp's own server takes at most 8190 bytes per request header line; a response gets more room.
MAX_RESPONSE_HEADERS = 256
MAX_RESPONSE_HEAD_BYTES = 64 * 1024
_WRITE_HIGH = 64 * 1024


class UpstreamConnectError(ConnectionError):
    """No connection to the upstream could be made."""


class UpstreamProtocolError(ConnectionError):
    """The upstream broke the connection or answered something that is not HTTP/1.1."""


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._reset_message()
        self._timer: asyncio.TimerHandle | None = None
        self._writable: asyncio.Future[None] | None = None
        self.closed = False

    def _reset_message(self) -> None:
        self.headers: CIMultiDict[str] = CIMultiDict()
        self._head_bytes = 0
        self.reason = ""
        self.head: asyncio.Future[None] = self._loop.create_future()
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self._body_waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._seen_response_bytes = False

    # -- asyncio.Protocol --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._seen_response_bytes = True
        self._arm_timer()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("unexpected upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"malformed response: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def eof_received(self) -> bool | None:
        if not self.complete and self.head.done() and self.error is None and self._close_delimited():
            # No Content-Length and not chunked: the body is everything up to the end of the connection.
            self.complete = True
            self._cancel_timer()
            self._wake()
        if not self.complete:
            self._fail(UpstreamProtocolError("connection closed before the response ended"))
        return None

    def _close_delimited(self) -> bool:
        status = self._parser.get_status_code()
        return (
            status not in (204, 304)
            and "Content-Length" not in self.headers
            and "chunked" not in self.headers.get("Transfer-Encoding", "").lower()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if not self.complete:
            self._fail(UpstreamProtocolError("connection lost"))
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(UpstreamProtocolError("connection lost while sending"))

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- llhttp callbacks --------------------------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self.reason = reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head.done():  # a chunked body's trailer fields: never headers of the response
            return
        # The byte count includes interim (1xx) heads: an endless stream of 103s is bounded the same way.
        self._head_bytes += len(name) + len(value)
        if len(self.headers) >= MAX_RESPONSE_HEADERS or self._head_bytes > MAX_RESPONSE_HEAD_BYTES:
            self._fail(UpstreamProtocolError("response head too large"))
            raise UpstreamProtocolError("response head too large")  # stops llhttp; data_received closes
        self.headers.add(name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: its headers are not the response's
            self.headers = CIMultiDict()
            return
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)
        self.buffered += len(chunk)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            # The client reads slowly: stop reading (and stop the read timer: it is not the upstream's fault).
            self._paused = True
            self._cancel_timer()
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:
            return
        # Only meaningful inside llhttp's callbacks: read it here, not after the message.
        self.keep_alive = self._parser.should_keep_alive()
        self.complete = True
        self._cancel_timer()
        self._wake()

    # -- helpers ----------------------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved here: a waiter may have gone
        self._wake()
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        if self._body_waiter is not None and not self._body_waiter.done():
            self._body_waiter.set_result(None)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._read_timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._fail(TimeoutError("upstream read timeout"))

    def start_request(self) -> None:
        self._reset_message()

    def request_sent(self) -> None:
        """The read timeout runs from here (a slow client upload is not the upstream's delay)."""
        if not self.complete and self.error is None:
            self._arm_timer()

    @property
    def may_retry(self) -> bool:
        """Nothing of an answer arrived: the upstream closed an idle connection as we reused it."""
        return not self._seen_response_bytes

    async def writable(self) -> None:
        if self._writable is not None and not self._writable.done():
            await self._writable

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, None at its end; raises if the connection failed."""
        while True:
            if self.body:
                chunk = self.body.popleft()
                self.buffered -= len(chunk)
                if self._paused and self.buffered < _HIGH_WATER // 2 and self.transport is not None:
                    self._paused = False
                    self._arm_timer()
                    self.transport.resume_reading()
                return chunk
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            self._body_waiter = self._loop.create_future()
            await self._body_waiter

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None


class UpstreamResponse:
    def __init__(self, pool: UpstreamPool, connection: _Connection, status: int) -> None:
        self._pool = pool
        self._connection = connection
        self.status = status
        self.reason = connection.reason
        self.headers = connection.headers
        length = self.headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self._released = False

    async def read_exactly(self, size: int) -> bytes:
        parts, have = [], 0
        while True:
            chunk = await self._connection.next_chunk()
            if chunk is None:
                break
            parts.append(chunk)
            have += len(chunk)
        if have != size:
            raise UpstreamProtocolError("body length differs from Content-Length")
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._connection.next_chunk()) is not None:
            yield chunk

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool.give_back(self._connection)


class UpstreamPool:
    """Keep-alive connections to one upstream origin (``http://`` or ``https://``)."""

    def __init__(self, origin: str, *, connect_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(origin)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.host_header = parts.netloc.rpartition("@")[2]
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop, self.read_timeout),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                ),
                self.connect_timeout,
            )
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamConnectError(str(exc)) from exc
        return connection

    def give_back(self, connection: _Connection) -> None:
        if connection.reusable and len(self._idle) < _MAX_IDLE:
            self._idle.append(connection)
        elif connection.transport is not None and not connection.closed:
            connection.transport.close()

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and connection.transport is not None and not connection.transport.is_closing():
                return connection
        return None

    def _head(self, method: str, target: str, headers: CIMultiDict[str], framing: str | None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        for name, value in headers.items():
            if name.lower() in _OWN:
                continue
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} cannot be sent")
            lines.append(f"{name}: {value}")
        if framing is not None:
            lines.append(framing)
        lines.append("\r\n")
        # aiohttp's server decoded the client's bytes as UTF-8 with surrogateescape: this gives them back as sent.
        return "\r\n".join(lines).encode("utf-8", "surrogateescape")

    async def request(
        self,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        *,
        body: StreamReader | None,
        body_length: int | None,
    ) -> UpstreamResponse:
        """Send one request; return once the response's headers arrived. The caller must release it."""
        if body is None:
            framing = None if method in _BODYLESS else "Content-Length: 0"
        elif body_length is not None:
            framing = f"Content-Length: {body_length}"
        else:
            framing = "Transfer-Encoding: chunked"
        head = self._head(method, target, headers, framing)
        reused = self._idle_connection()
        connection = reused or await self._connect()
        try:
            return await self._exchange(connection, head, body, chunked=body is not None and body_length is None)
        except UpstreamProtocolError:
            # A pooled connection the upstream had closed while idle: one more try on a fresh one, but only
            # when nothing was answered and no body was consumed (so the request can be sent again as is).
            if reused is None or body is not None or not connection.may_retry:
                raise
        return await self._exchange(await self._connect(), head, None, chunked=False)

    async def _exchange(
        self, connection: _Connection, head: bytes, body: StreamReader | None, *, chunked: bool
    ) -> UpstreamResponse:
        assert connection.transport is not None
        connection.start_request()
        transport = connection.transport
        try:
            if body is None:
                transport.write(head)
            else:
                transport.write(head)
                async for chunk in body.iter_chunked(64 * 1024):
                    if chunk:
                        transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                        if transport.get_write_buffer_size() > _WRITE_HIGH:
                            await connection.writable()
                if chunked:
                    transport.write(b"0\r\n\r\n")
            connection.request_sent()
            await connection.head
        except BaseException:
            transport.close()
            raise
        return UpstreamResponse(self, connection, connection._parser.get_status_code())

    def close(self) -> None:
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.close()
        self._idle.clear()
