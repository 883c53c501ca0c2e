"""Malformed HTTP (issue 15, defect 7): each request the parser refuses is a 400, one structured warning line
without a traceback, and a count by reason; a flood of them is rate-limited in the log but not in the metric.
Raw sockets against the real gateway send exactly the bytes a client can send.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway import protocol_errors
from gateway.protocol_errors import ProtocolErrorLog
from tests.support.stack import Stack, running_stack

#: name -> (bytes, the metric's reason, the log line's detail: llhttp's own words, without the quoted bytes).
MALFORMED = {
    "header without colon": (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                             "bad_http_message", "Invalid header token"),
    "not HTTP": (b"GARBAGE\r\n\r\n", "bad_http_method", "Invalid method encountered"),
    "two Content-Lengths": (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                            "bad_http_message", "Duplicate Content-Length"),
    "NUL in path": (b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", "invalid_url_error", "Invalid char in url path"),
    "header over 8 KiB": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
                          "line_too_long", "Got more than 8190 bytes when reading"),
}


async def send_raw(url: str, payload: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


async def metric_values(stack: Stack) -> dict[str, float]:
    metrics_url = stack.gateway.metrics_url
    assert metrics_url is not None
    async with aiohttp.ClientSession() as http, http.get(metrics_url) as response:
        text = await response.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("gateway_malformed_requests_total{"):
            labels, _, value = line.rpartition(" ")
            values[labels.split('reason="')[1].split('"')[0]] = float(value)
    return values


@pytest.fixture
def gateway_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_each_malformed_request_is_a_400_and_one_warning_line(gateway_log: pytest.LogCaptureFixture) -> None:
    async with running_stack() as stack:
        for payload, _, _ in MALFORMED.values():
            answer = await send_raw(stack.url, payload)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0], answer[:200]
        await asyncio.sleep(0.1)
        assert not stack.echo.requests, "a malformed request reached the upstream"
        values = await metric_values(stack)
    refused = [r for r in gateway_log.records if r.getMessage() == "malformed_request"]
    seen = sorted((r.fields["reason"], r.fields["detail"]) for r in refused)  # type: ignore[attr-defined]
    assert seen == sorted((reason, detail) for _, reason, detail in MALFORMED.values())
    assert not [r for r in refused if "Bad Header" in json.dumps(r.fields)], "the client's bytes were logged"  # type: ignore[attr-defined]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in refused)
    assert not [r for r in gateway_log.records if r.exc_info], "a traceback was logged"
    assert not [r for r in gateway_log.records if r.levelno >= logging.ERROR]
    assert values == {"bad_http_message": 2.0, "bad_http_method": 1.0, "invalid_url_error": 1.0, "line_too_long": 1.0}


async def test_a_flood_is_counted_but_logged_at_a_bounded_rate(gateway_log: pytest.LogCaptureFixture) -> None:
    flood = 3 * protocol_errors.LINES_PER_WINDOW
    async with running_stack() as stack:
        for _ in range(flood):
            await send_raw(stack.url, MALFORMED["NUL in path"][0])
        values = await metric_values(stack)
    lines = [r for r in gateway_log.records if r.getMessage() == "malformed_request"]
    assert len(lines) == protocol_errors.LINES_PER_WINDOW
    assert values == {"invalid_url_error": float(flood)}


def test_the_next_line_after_a_quiet_spell_says_how_many_were_left_out(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp import http_exceptions

    now = [0.0]
    counter = Counter("malformed", "test", ["reason"], registry=CollectorRegistry())
    log = ProtocolErrorLog(counter, clock=lambda: now[0])
    caplog.set_level(logging.INFO)
    for _ in range(protocol_errors.LINES_PER_WINDOW + 4):
        log.exception("Error handling request from %s", "192.0.2.1", exc_info=http_exceptions.BadStatusLine("x"))
    now[0] += protocol_errors.WINDOW_SECONDS
    log.exception("Error handling request from %s", "192.0.2.1", exc_info=http_exceptions.BadStatusLine("x"))
    lines = [r for r in caplog.records if r.getMessage() == "malformed_request"]
    assert len(lines) == protocol_errors.LINES_PER_WINDOW + 1
    assert lines[-1].fields["suppressed_before"] == 4  # type: ignore[attr-defined]
    assert lines[0].fields["client"] == "192.0.2.1"  # type: ignore[attr-defined]
    assert json.dumps(lines[0].fields)  # type: ignore[attr-defined]


def test_other_errors_still_reach_aiohttps_logger_with_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Only parser refusals are condensed: a real exception in a handler keeps its traceback."""
    counter = Counter("malformed", "test", ["reason"], registry=CollectorRegistry())
    log = ProtocolErrorLog(counter)
    caplog.set_level(logging.ERROR, logger="aiohttp.server")
    try:
        raise RuntimeError("bug")
    except RuntimeError as exc:
        log.exception("Unhandled exception", exc_info=exc)
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == 1 and records[0].exc_info is not None
