"""The access log (issue 12): one JSON line per request on standard error, at a cost the hot path can carry.

Why not ``logging``: a record, a formatter, ``json.dumps`` of a dict, a regex pass and one ``write`` per line
cost about 40% of the authenticated GET's throughput (bench/ row 1 at defaults). Here a line is built in a
fixed field order from pre-escaped parts, the national-ID mask runs only on a path that holds six digits in a
row, and lines are buffered and written every 50 ms (or at 64 KiB), to a descriptor of their own
that never blocks the loop: when standard error is a full pipe, lines wait (up to ``MAX_PENDING`` bytes) and
beyond that are dropped, counted in ``gateway_log_lines_dropped_total`` and said once on standard error.

Fields, in this order (docs/operations.md, "Access log"): ``ts``, ``level`` ("info"), ``event`` ("request"),
``method``, ``host``, ``route``, ``path`` (no query, national IDs masked, at most 256 characters), ``status``,
``outcome``, ``ms``, ``bytes``, ``upstream_status``, ``upstream_ms``, ``client``, ``request_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import sys
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _quote

from gateway.logs import mask_national_id

FLUSH_AT = 64 * 1024
#: Lines wait at most this long: one write per 50 ms (or per 64 KiB) instead of one per event-loop turn cost
#: about a tenth of the authenticated GET's throughput less in bench/ row 8 (measured in docs/performance.md).
FLUSH_EVERY = 0.05
#: Bytes that may wait for a full pipe before lines are dropped.
MAX_PENDING = 1024 * 1024
MAX_PATH = 256
_DIGITS = re.compile(r"\d{6}")
_DROPPED_NOTICE = (
    b'{"level":"warning","event":"log_lines_dropped","detail":"standard error was not read fast enough; access '
    b'log lines were dropped and are counted in gateway_log_lines_dropped_total"}\n'
)


def _text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _number(value: float | int | None) -> str:
    return "null" if value is None else str(value)


def _open_own_descriptor(fd: int) -> int:
    """A file description of its own for ``fd`` (so O_NONBLOCK does not change how anyone else writes to it),
    or a plain duplicate where /proc is not there (then writes may block, as logging's do)."""
    try:
        own = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError:
        return os.dup(fd)
    os.set_blocking(own, False)
    return own


class AccessLog:
    def __init__(
        self,
        *,
        enabled: bool = True,
        fd: int | None = None,
        on_drop: Callable[[int], None] = lambda _n: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self._target = fd
        self._fd: int | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flush_scheduled = False
        self._on_drop = on_drop
        self._clock = clock
        self._said_dropped = False
        self._notice_due = False
        self._second = -1
        self._second_text = ""

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = _open_own_descriptor(sys.stderr.fileno() if self._target is None else self._target)
        return self._fd

    def _timestamp(self) -> str:
        now = self._clock()
        second = int(now)
        if second != self._second:  # strftime once a second, not once a line
            self._second, self._second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int(now * 1000) % 1000:03d}Z"

    def request(
        self,
        *,
        method: str,
        host: str,
        route: str | None,
        path: str,
        status: int,
        outcome: str,
        ms: float,
        body_bytes: int | None,
        upstream_status: int | None,
        upstream_ms: float | None,
        client: str,
        request_id: str | None,
    ) -> None:
        if not self.enabled:
            return
        path = path[:MAX_PATH]
        if _DIGITS.search(path):
            path = mask_national_id(path)
        line = (
            f'{{"ts":"{self._timestamp()}","level":"info","event":"request","method":{_quote(method)},'
            f'"host":{_quote(host)},"route":{_text(route)},"path":{_quote(path)},"status":{status},'
            f'"outcome":"{outcome}","ms":{ms},"bytes":{_number(body_bytes)},'
            f'"upstream_status":{_number(upstream_status)},"upstream_ms":{_number(upstream_ms)},'
            f'"client":{_quote(client)},"request_id":{_text(request_id)}}}\n'
        ).encode("ascii")
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= FLUSH_AT:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_EVERY, self.flush)
            except RuntimeError:  # no loop (a test calling directly): write now
                self.flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending and not self._notice_due:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        try:
            written = os.write(self._descriptor(), data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                written = 0
            else:
                # Standard error closed or gone (EPIPE, EBADF, ...): a log line must never fail a request. The
                # lines are lost; they are counted.
                self._pending_bytes = 0
                self._dropped(data.count(b"\n"))
                return
        rest = data[written:]
        if not rest:
            self._pending_bytes = 0
            if self._notice_due:  # the reader caught up: now the notice can go out whole
                with contextlib.suppress(OSError):
                    if os.write(self._descriptor(), _DROPPED_NOTICE) == len(_DROPPED_NOTICE):
                        self._notice_due = False
                if self._notice_due and not self._flush_scheduled:
                    self._flush_scheduled = True
                    with contextlib.suppress(RuntimeError):
                        asyncio.get_running_loop().call_later(0.05, self.flush)
            return
        if len(rest) > MAX_PENDING:
            # A line the pipe took part of must be finished, or the reader gets a broken line; after it, keep
            # the newest MAX_PENDING bytes of whole lines and count the lines dropped between.
            tail = 0 if written == 0 or data[written - 1] == 0x0A else rest.find(b"\n") + 1
            cut = max(tail, rest.find(b"\n", len(rest) - MAX_PENDING) + 1)
            self._dropped(rest[tail:cut].count(b"\n"))
            rest = rest[:tail] + rest[cut:]
        self._pending = [rest] if rest else []
        self._pending_bytes = len(rest)
        if rest and not self._flush_scheduled:
            self._flush_scheduled = True
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_later(0.05, self.flush)

    def _dropped(self, lines: int) -> None:
        self._on_drop(lines)
        if not self._said_dropped:  # once per process, when the lines get through again
            self._said_dropped = self._notice_due = True

    def close(self) -> None:
        if self._fd is not None:
            # Whatever still waits goes out blocking: nothing is lost at a clean stop.
            os.set_blocking(self._fd, True)
            with contextlib.suppress(OSError):
                self.flush()
            os.close(self._fd)
            self._fd = None
