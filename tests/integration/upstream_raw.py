"""A byte-level upstream on loopback: records the exact request bytes it receives, answers with crafted bytes.

Each request is read in full (Content-Length or chunked body, de-chunked for the test) before its reply is
chosen: the next scripted reply if any, else ``default``. A reply is raw bytes (written, connection kept) or
an async callable ``(request, writer) -> bool`` that writes what it likes and returns whether to keep the
connection open.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.support.ports import free_port

Reply = bytes | Callable[["RawRequest", asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class RawRequest:
    connection: int
    head: bytes
    raw_body: bytes
    body: bytes
    method: str
    target: str
    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header_bytes(self, name: str) -> list[bytes]:
        """Raw header values as on the wire (no decoding)."""
        out = []
        for line in self.head.split(b"\r\n")[1:]:
            key, sep, value = line.partition(b":")
            if sep and key.decode("latin-1").lower() == name.lower():
                out.append(value.strip(b" \t"))
        return out


def response(status: str = "200 OK", body: bytes = b"ok", headers: tuple[str, ...] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def close_after(data: bytes) -> Reply:
    """Write ``data``, then close the connection (FIN)."""

    async def reply(_request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return False

    return reply


async def close_silently(_request: RawRequest, _writer: asyncio.StreamWriter) -> bool:
    """Close without a byte of answer: the upstream dropped the idle connection as the request came in."""
    return False


async def reset(_request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    """Abort with an RST (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def never_answer(release: asyncio.Event) -> Reply:
    async def reply(_request: RawRequest, _writer: asyncio.StreamWriter) -> bool:
        await release.wait()
        return False

    return reply


@dataclass
class RawUpstream:
    port: int = field(default_factory=free_port)
    requests: list[RawRequest] = field(default_factory=list)
    replies: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=response)
    connections: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=2)
            for task in pending:  # only a reply still waiting on the test
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self._server.wait_closed()

    async def close_idle_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0.05)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        index = self.connections
        self.connections += 1
        try:
            while True:
                request = await self._read_request(reader, index)
                if request is None:
                    return
                self.requests.append(request)
                reply = self.replies.popleft() if self.replies else self.default
                if callable(reply):
                    keep = await reply(request, writer)
                else:
                    writer.write(reply)
                    await writer.drain()
                    keep = True
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader, index: int) -> RawRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip(" \t")))
        lowered = {n.lower(): v for n, v in headers}
        raw_body = body = b""
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            parts, raw = [], []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                raw.append(size_line)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                        raw.append(trailer)
                    raw.append(b"\r\n")
                    break
                chunk = await reader.readexactly(size + 2)
                raw.append(chunk)
                parts.append(chunk[:-2])
            raw_body, body = b"".join(raw), b"".join(parts)
        elif "content-length" in lowered:
            raw_body = body = await reader.readexactly(int(lowered["content-length"]))
        return RawRequest(index, head, raw_body, body, method, target, headers)
