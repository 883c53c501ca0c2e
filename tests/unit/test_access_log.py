"""gateway/access_log.py: the line as documented, national IDs masked, and a full pipe never blocks the
event loop (lines wait up to 1 MiB, then are dropped, counted, and said once)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time

import pytest

from gateway.access_log import MAX_PENDING, AccessLog

FIELDS = ["ts", "level", "event", "method", "host", "route", "path", "status", "outcome", "ms", "bytes",
          "upstream_status", "upstream_ms", "client", "request_id"]


def line(log: AccessLog, **overrides: object) -> None:
    fields: dict[str, object] = dict(
        method="GET", host="app.example.com", route="wiki", path="/page", status=200, outcome="proxied", ms=1.25,
        body_bytes=512, upstream_status=200, upstream_ms=0.8, client="10.0.0.7", request_id="abc",
    )
    fields.update(overrides)
    log.request(**fields)  # type: ignore[arg-type]


def read_all(fd: int) -> list[dict[str, object]]:
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return [json.loads(x) for x in data.decode().splitlines()]


def test_the_line_has_the_documented_fields_in_order() -> None:
    r, w = os.pipe()
    log = AccessLog(fd=w, clock=lambda: 1_700_000_000.5)
    line(log, path='/a"b\\c\n', host="h\u00e5st", route=None, request_id=None, upstream_status=None, upstream_ms=None)
    (entry,) = read_all(r)
    assert list(entry) == FIELDS
    assert entry["ts"] == "2023-11-14T22:13:20.500Z" and entry["event"] == "request"
    assert entry["path"] == '/a"b\\c\n' and entry["host"] == "h\u00e5st"  # escaped, read back intact
    assert entry["route"] is None and entry["upstream_status"] is None and entry["bytes"] == 512


@pytest.mark.parametrize(("path", "logged"), [
    ("/users/199003152387/profile", "/users/19900315****/profile"),
    ("/order/123456", "/order/******"),
    ("/page/12345", "/page/12345"),
])
def test_national_ids_in_paths_are_masked(path: str, logged: str) -> None:
    r, w = os.pipe()
    line(AccessLog(fd=w), path=path)
    assert read_all(r)[0]["path"] == logged


def test_off_writes_nothing() -> None:
    r, w = os.pipe()
    line(AccessLog(fd=w, enabled=False))
    assert read_all(r) == []


async def test_a_full_pipe_never_blocks_and_drops_are_counted() -> None:
    r, w = os.pipe()
    size = fcntl.fcntl(w, 1032)  # F_GETPIPE_SZ
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 4096)  # nobody reads: the pipe fills up
    except BlockingIOError:
        pass
    dropped: list[int] = []
    log = AccessLog(fd=w, on_drop=dropped.append)
    started = time.monotonic()
    for _ in range(12_000):  # about 3 MiB of lines
        line(log, path="/" + "p" * 200)
    await asyncio.sleep(0)
    assert time.monotonic() - started < 2.0, "writing lines blocked on the full pipe"
    assert sum(dropped) > 0 and log._pending_bytes <= MAX_PENDING
    # The reader catches up: what waited comes out as whole lines, with one notice that lines were dropped.
    os.set_blocking(r, False)
    stream = b""
    for _ in range(100):
        try:
            stream += os.read(r, 1 << 20)
        except BlockingIOError:
            log.flush()
            await asyncio.sleep(0.06)
            if not log._pending and not log._notice_due:
                try:
                    stream += os.read(r, 1 << 20)
                except BlockingIOError:
                    break
    text = stream.lstrip(b"x").decode()
    assert len(stream) > size
    entries = [json.loads(x) for x in text.splitlines()]  # every line whole: none was cut in two
    assert sum(1 for e in entries if e.get("event") == "log_lines_dropped") == 1
    assert sum(1 for e in entries if e.get("event") == "request") == 12_000 - sum(dropped)


def test_a_closed_standard_error_never_fails_a_request() -> None:
    r, w = os.pipe()
    os.close(r)  # nobody will ever read: EPIPE
    dropped: list[int] = []
    log = AccessLog(fd=w, on_drop=dropped.append)
    line(log)  # no loop running: written at once, and refused by the kernel
    assert dropped == [1] and log._pending == []
    os.close(w)
    gone = AccessLog(fd=w, on_drop=dropped.append)  # a descriptor that no longer exists (EBADF)
    line(gone)
    assert dropped == [1, 1]
