"""Requests refused before they reach the gateway's handler (web layer): malformed HTTP that aiohttp's
parser rejects with a 400 (bad request line, header syntax, duplicate Content-Length, over-long lines, bad
chunked encoding, ...).

aiohttp logs each one with a full traceback at error level, so anyone who can open a connection can fill
the error log. Its request handler takes the logger to use (``RequestHandler(logger=...)``, passed through
``AppRunner``): this one turns a parser error into one structured warning line with the reason and the
client address, rate-limited per process, and counts every one in a metric by reason. Everything else that
aiohttp logs (a real exception in our code) goes on to aiohttp's own logger unchanged.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import http_exceptions
from prometheus_client import Counter

from gateway import logs

#: At most this many lines per window per process; the next line after a quiet spell says how many were
#: left out. Counting continues in the metric whatever the rate.
LINES_PER_WINDOW = 10
WINDOW_SECONDS = 10.0
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def reason_of(exc: BaseException) -> str:
    """``LineTooLong`` -> ``line_too_long``, ``InvalidURLError`` -> ``invalid_url_error``: the parser
    error's class, a small fixed set (a metric label must not carry what the client sent)."""
    return _WORD_START.sub("_", type(exc).__name__).lower()


def detail_of(exc: http_exceptions.HttpProcessingError) -> str:
    """What the parser said, up to its first ':' (llhttp's fixed reason, e.g. "Invalid header token"); the
    bytes it quotes after that are the client's and stay out of the log. For the log line only: the metric's
    label is the class, a bounded set."""
    text = str(exc.message).split("\n", 1)[0].split(":", 1)[0]
    return text[:64]


class ProtocolErrorLog:
    """Stands in for aiohttp's ``aiohttp.server`` logger in its request handler."""

    def __init__(
        self,
        counter: Counter,
        *,
        clock: Callable[[], float] = time.monotonic,
        fallback: logging.Logger | None = None,
    ) -> None:
        self._counter = counter
        self._clock = clock
        self._fallback = fallback or logging.getLogger("aiohttp.server")
        self._window_start = float("-inf")
        self._lines = 0
        self._suppressed = 0

    def _refused(self, exc: http_exceptions.HttpProcessingError, client: object) -> None:
        reason = reason_of(exc)
        self._counter.labels(reason).inc()
        now = self._clock()
        if now - self._window_start >= WINDOW_SECONDS:
            self._window_start, self._lines = now, 0
        if self._lines >= LINES_PER_WINDOW:
            self._suppressed += 1
            return
        self._lines += 1
        fields: dict[str, Any] = {"reason": reason, "detail": detail_of(exc), "status": exc.code, "client": str(client)}
        if self._suppressed:
            fields["suppressed_before"] = self._suppressed
            self._suppressed = 0
        logs.event("malformed_request", logging.WARNING, **fields)

    def _route(self, level: int, msg: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, http_exceptions.HttpProcessingError) and msg.startswith("Error handling request"):
            self._refused(exc, args[0] if args else "")
            return
        self._fallback.log(level, msg, *args, **kwargs)

    # The methods aiohttp's RequestHandler calls (log_debug, log_exception, handle_error).
    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self._route(logging.ERROR, msg, args, kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._route(logging.DEBUG, msg, args, kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._fallback.warning(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._fallback.error(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._fallback.info(msg, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:  # logging.Logger's name
        return self._fallback.isEnabledFor(level)
