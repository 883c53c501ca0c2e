"""Shared helpers for the security tables: raw-socket HTTP, a login through the development IdP, checks."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp

from tests.support.fake_op import Outcome, fetch
from tests.support.stack import Stack, parse_forms

_STATUS = re.compile(rb"HTTP/\d\.\d (\d{3})")


@dataclass
class RawResponse:
    data: bytes
    closed: bool = False  # the server closed the connection (EOF seen)

    @property
    def statuses(self) -> list[int]:
        """Status of every response on the connection, read in sequence by their framing."""
        out: list[int] = []
        rest = self.data
        while rest:
            head, sep, rest = rest.partition(b"\r\n\r\n")
            match = _STATUS.match(head)
            if not sep or match is None:
                break
            out.append(int(match.group(1)))
            lengths = re.findall(rb"(?im)^content-length:\s*(\d+)\s*$", head)
            if lengths:
                rest = rest[int(lengths[0]):]
            elif re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
                while True:
                    size_line, _, rest = rest.partition(b"\r\n")
                    size = int(size_line.split(b";")[0] or b"0", 16)
                    rest = rest[size + 2:]
                    if size == 0:
                        break
            else:
                break
        return out

    @property
    def status(self) -> int | None:
        match = _STATUS.match(self.data)
        return int(match.group(1)) if match else None

    @property
    def head(self) -> str:
        return self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1")

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def text(self) -> str:
        return self.data.decode("latin-1")


async def raw_http(port: int, data: bytes, *, timeout: float = 3.0) -> RawResponse:
    """Send bytes exactly as given (no client normalisation) and read until the server closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunks: list[bytes] = []
    closed = False
    try:
        writer.write(data)
        await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=min(remaining, 0.5))
            except TimeoutError:
                if chunks:  # an answer arrived and the connection stays open: it is complete enough
                    break
                continue
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.wait_closed()
    return RawResponse(b"".join(chunks), closed)


def request_bytes(target: str | bytes, *, method: str = "GET", host: str = "127.0.0.1",
                  headers: list[tuple[str, str]] | None = None, extra: bytes = b"",
                  accept: str = "text/html") -> bytes:
    """One HTTP/1.1 request with Connection: close; ``target`` goes on the request line untouched."""
    line = (method.encode() + b" " + (target if isinstance(target, bytes) else target.encode()) + b" HTTP/1.1\r\n")
    head = [f"Host: {host}", f"Accept: {accept}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or [])]
    return line + "".join(h + "\r\n" for h in head).encode("latin-1") + b"\r\n" + extra


def readings(location: str) -> list[str]:
    """A Location as every later hop may read it: percent-decoded up to three times, backslashes folded."""
    out = [location]
    for _ in range(3):
        out.append(unquote(out[-1]))
    return [r.replace("\\", "/") for r in out]


def assert_same_origin_relative(location: str | None) -> None:
    """attacks.md T01: never a foreign host, never CR/LF, scheme and netloc empty in every reading."""
    assert location is not None
    assert "\r" not in location and "\n" not in location
    for reading in readings(location):
        stripped = "".join(c for c in reading if c not in "\t\r\n\x0b\x0c")
        parts = urlsplit(stripped)
        assert not parts.scheme and not parts.netloc, (location, reading)
        assert stripped.startswith("/") and not stripped.startswith("//"), (location, reading)


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text


async def dev_login_outcome(http: aiohttp.ClientSession, stack: Stack, login_url: str,
                            person: str = "Åsa Öberg") -> Outcome:
    """Start at ``login_url`` (sent as given), pick ``person`` at the development IdP, and return the
    gateway callback's own answer (its Location is the final redirect target)."""
    start = await fetch(http, "GET", login_url, headers={"Accept": "text/html"})
    assert start.status == 302 and start.location, (start.status, start.body)
    return await finish_at_devidp(http, stack, start.location, person=person)


async def finish_at_devidp(http: aiohttp.ClientSession, stack: Stack, authorize_url: str,
                           person: str = "Åsa Öberg") -> Outcome:
    """Open the development IdP's login page at ``authorize_url``, pick ``person``, and return the gateway
    callback's own answer (its Location is the final redirect target)."""
    async with http.get(authorize_url, headers={"Accept": "text/html"}, allow_redirects=False) as page_resp:
        assert page_resp.status == 200, await page_resp.text()
        page, page_url = await page_resp.text(), str(page_resp.url)
    form = next(f for f in parse_forms(page) if f"Log in as {person}" in f["text"])
    async with http.post(urljoin(page_url, form["action"]), data=form["fields"], allow_redirects=False) as decided:
        assert decided.status in (302, 303), await decided.text()
        callback = decided.headers["Location"]
    assert callback.startswith(stack.url + "/_auth/callback/dev?"), callback
    return await fetch(http, "GET", callback, headers={"Accept": "text/html"})
