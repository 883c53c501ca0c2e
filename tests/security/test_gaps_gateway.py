"""attacks.md cases that the section files (test_a ... test_k) did not assert, against the real gateway on
loopback: T08 (the client address the gateway hands on: BankID's end_user_ip, logs), T13 (the documented
base64url header encoding end to end), T17 (a raw ``#`` in the query), T44 (the start-up refusal of
aiohttp's pure-Python parser), T45 (body caps on the gateway's own endpoints, slow clients beside normal
ones) and T51 (secret comparisons really go through ``hmac.compare_digest`` at run time).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import os
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
import yaml

from gateway import server
from gateway.keys import generate_ec_pem
from tests.security.helpers import assert_no_traceback, raw_http, request_bytes
from tests.security.test_i_headless import PROVIDER, START, headless_provider
from tests.support.fake_op import (
    SSN,
    OpStack,
    begin_login,
    callback_with,
    fetch,
    finish_login,
    jar,
    login,
    running_op_stack,
)
from tests.support.ports import free_port
from tests.support.stack import base_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parents[2]
#: `python -m gateway` from the repository root: the gateway package of this tree (README "Commands").
GATEWAY_CMD = [sys.executable, "-m", "gateway"]

SPOOFED_IP = "6.6.6.6"
#: Every client-address header a client can send (attacks.md T08 and the usual CDN/framework names).
ADDRESS_SPOOFS = {
    "X-Forwarded-For": f"{SPOOFED_IP}, 7.7.7.7",
    "X-Real-IP": SPOOFED_IP,
    "Forwarded": f"for={SPOOFED_IP}",
    "True-Client-IP": SPOOFED_IP,
    "CF-Connecting-IP": SPOOFED_IP,
    "X-Client-IP": SPOOFED_IP,
}


# ------------------------------------------------------------------------------------------------ T08


@asynccontextmanager
async def headless_stack(tmp_path: Path, *, trusted: list[str]) -> AsyncIterator[OpStack]:
    key_file = tmp_path / "client.pem"
    key_file.write_bytes(generate_ec_pem())
    make_headless = headless_provider(key_file)

    def customize(config: dict[str, Any]) -> None:
        make_headless(config)
        config["trusted_proxies"] = trusted

    async with running_op_stack(customize=customize) as stack:
        yield stack


async def _start_headless(stack: OpStack, headers: dict[str, str]) -> str:
    """Start a BankID login with ``headers`` and return the end_user_ip the gateway sent to Idura."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        out = await fetch(http, "POST", f"{stack.url}{START}", json={"provider": PROVIDER, "rd": "/x"},
                          headers={"Accept": "application/json", **headers})
    assert out.status == 200, out.body
    return stack.op.headless_starts[-1].form["end_user_ip"]


async def test_t08_end_user_ip_is_the_tcp_peer_whatever_the_client_claims(tmp_path: Path) -> None:
    """T08: BankID risk checks use end_user_ip; a client outside trusted_proxies cannot choose it."""
    async with headless_stack(tmp_path, trusted=[]) as stack:
        assert await _start_headless(stack, {}) == "127.0.0.1"  # control
        for name, value in ADDRESS_SPOOFS.items():
            assert await _start_headless(stack, {name: value}) == "127.0.0.1", name
        assert await _start_headless(stack, ADDRESS_SPOOFS) == "127.0.0.1"


@pytest.mark.parametrize(("forwarded_for", "expected"), [
    (f"{SPOOFED_IP}, 10.0.0.1", "10.0.0.1"),  # the right-most hop the trusted proxy saw, not the client's claim
    ("10.0.0.1", "10.0.0.1"),
    ("not-an-ip, 10.0.0.2", "10.0.0.2"),
    (f"{SPOOFED_IP}, garbage", "127.0.0.1"),  # an unparsable right-most hop: fall back to the peer itself
])
async def test_t08_behind_a_trusted_proxy_end_user_ip_is_the_right_most_untrusted_hop(
    tmp_path: Path, forwarded_for: str, expected: str
) -> None:
    """T08: behind trusted_proxies the client is the right-most untrusted X-Forwarded-For hop; X-Real-IP and
    the other address headers are never believed."""
    async with headless_stack(tmp_path, trusted=["127.0.0.1/32"]) as stack:
        sent = await _start_headless(stack, {"X-Forwarded-For": forwarded_for, "X-Real-IP": SPOOFED_IP,
                                             "True-Client-IP": SPOOFED_IP})
    assert sent == expected


async def test_t08_spoofed_addresses_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """T08: a client-chosen address is never attributed to anything in the gateway's log events."""
    caplog.set_level(logging.DEBUG)
    async with running_op_stack() as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        for path in ("/public/x", "/private/x", "/_auth/login?rd=/x", "/_auth/userinfo", "/_auth/verify"):
            await fetch(http, "GET", f"{stack.url}{path}", headers=ADDRESS_SPOOFS)
        flow = await begin_login(http, stack, headers=ADDRESS_SPOOFS)
        done = await finish_login(http, flow, headers=ADDRESS_SPOOFS)
        assert done.sets("gw_session")
        assert (await fetch(http, "GET", f"{stack.url}/private/x", headers=ADDRESS_SPOOFS)).status == 200
    assert any(r.getMessage() == "login_completed" for r in caplog.records)
    for record in caplog.records:
        blob = f"{record.getMessage()} {getattr(record, 'fields', '')}"
        assert SPOOFED_IP not in blob, blob


# ------------------------------------------------------------------------------------------------ T13


def _b64url(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).rstrip(b"=").decode("ascii")


def _b64url_decode(value: str) -> str:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8")


@pytest.mark.parametrize("name", ["Åsa Öberg", "A\u030asa O\u0308berg", "Zoë 李 😀", "Ærø-Ångström",
                                  "UTF-8''%0D%0A", "Test Testsson"])
async def test_t13_base64url_header_encoding_end_to_end(name: str) -> None:
    """T13 with ``header_encoding: base64url`` (README "Identity headers"): every identity header is the
    unpadded base64url of the NFC UTF-8 value, NFC and NFD give the same bytes, the assertion carries the text."""

    def b64_headers(config: dict[str, Any]) -> None:
        config["header_encoding"] = "base64url"

    async with running_op_stack(customize=b64_headers) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, stack, name=name)).sets("gw_session")
        assert (await fetch(http, "GET", f"{stack.url}/private/x")).status == 200
    seen = stack.echo.requests[-1]
    nfc = unicodedata.normalize("NFC", name)
    assert seen.headers.getall("X-Auth-Name") == [_b64url(nfc)]
    assert seen.headers.getall("X-Auth-Ssn") == [_b64url(SSN)]
    assert seen.headers.getall("X-Auth-Country") == [_b64url("SE")]
    for header in ("X-Auth-Name", "X-Auth-Ssn", "X-Auth-Country"):
        value = seen.headers[header]
        assert all(c.isalnum() or c in "-_" for c in value), (header, value)  # no padding, no '+', '/'
        assert unicodedata.normalize("NFC", _b64url_decode(value)) == _b64url_decode(value)


# ------------------------------------------------------------------------------------------------ T17


@pytest.mark.parametrize("target", [
    "/public/x?a#b",
    "/public/x?next=/public/#/../private/x",
    "/public/x?#",
    "/private/x?a#/public/",
])
@pytest.mark.parametrize("session", [False, True])
async def test_t17_raw_hash_in_the_query_is_400(op_stack: OpStack, target: str, session: bool) -> None:
    """T17: "A raw `#` in the request target gives 400" -- in the query too, not only in the path. A `#` is
    not allowed anywhere in an HTTP/1.1 request-target (RFC 9112 §3.2, RFC 3986 §3.4); accepting it means the
    gateway and the upstream read different queries (the upstream gets the query cut at the `#`)."""
    headers: list[tuple[str, str]] = []
    if session:
        async with aiohttp.ClientSession(cookie_jar=jar()) as http:
            assert (await login(http, op_stack)).sets("gw_session")
            headers.append(("Cookie", "gw_session=" + {c.key: c.value for c in http.cookie_jar}["gw_session"]))
        op_stack.echo.requests.clear()
    raw = await raw_http(op_stack.port, request_bytes(target, headers=headers))
    assert_no_traceback(raw.text)
    forwarded = [(r.path, r.query_string) for r in op_stack.echo.requests]
    assert raw.status == 400, (raw.status, forwarded)
    assert forwarded == []


# ------------------------------------------------------------------------------------------------ T44


async def test_t44_the_c_parser_is_what_the_raw_socket_tests_ran_against() -> None:
    """T44: the smuggling tables (test_j_http.py) mean something only on aiohttp's C parser."""
    assert server.c_parser_active()
    assert server.check_parser() is None


def _write_config(tmp_path: Path) -> tuple[Path, int]:
    port = free_port()
    config = base_config(gateway_port=port, metrics_port=free_port(), issuer=f"http://127.0.0.1:{free_port()}",
                         upstream=f"http://127.0.0.1:{free_port()}", client_secret="s" * 32)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path, port


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def test_t44_gateway_refuses_to_start_on_the_pure_python_parser(tmp_path: Path) -> None:
    """T44: with AIOHTTP_NO_EXTENSIONS=1 `eid-gateway run` exits 2 with a reason and never listens; the
    documented override EID_GATEWAY_ALLOW_PYTHON_PARSER=1 starts it (so the refusal is the parser check)."""
    config_path, port = _write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("AIOHTTP_NO_EXTENSIONS", server.ALLOW_PY_PARSER_ENV)}
    checked = subprocess.run([*GATEWAY_CMD, "check-config", "--config", str(config_path)], env=env, cwd=REPO,
                             capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    refused = subprocess.run([*GATEWAY_CMD, "run", "--config", str(config_path), "--workers", "1"], cwd=REPO,
                             env={**env, "AIOHTTP_NO_EXTENSIONS": "1"}, capture_output=True, timeout=60,
                             start_new_session=True)
    assert refused.returncode == 2, (refused.returncode, refused.stderr[-500:])
    assert b"C HTTP parser is not active" in refused.stderr, refused.stderr[-500:]
    assert not await _listening(port)

    proc = subprocess.Popen([*GATEWAY_CMD, "run", "--config", str(config_path), "--workers", "1"], cwd=REPO,
                            env={**env, "AIOHTTP_NO_EXTENSIONS": "1", server.ALLOW_PY_PARSER_ENV: "1"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not await _listening(port):
            assert proc.poll() is None, f"the override did not start the gateway (exit {proc.returncode})"
            assert time.monotonic() < deadline, "the gateway never listened with the override"
            await asyncio.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------------ T45


def _chunked(body: bytes, size: int = 8192) -> bytes:
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


async def _post_callback(stack: OpStack, login_cookie: str, form: bytes, *, chunked: bool) -> Any:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(form)}"
    head = (f"POST /_auth/callback/dev HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nCookie: gw_session_login={login_cookie}\r\n"
            f"{framing}\r\nConnection: close\r\n\r\n").encode()
    return await raw_http(stack.port, head + (_chunked(form) if chunked else form))


def _form_post_mode(config: dict[str, Any]) -> None:
    config["providers"][0]["response_mode"] = "form_post"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_t45_callback_refuses_a_large_body_with_a_4xx(chunked: bool) -> None:
    """T45: "Auth endpoints refuse request bodies larger than a small limit" -- a form_post callback over the
    64 KiB cap, carrying a live code and state, is a 400/413 (never a 500), and no code is exchanged. The
    same callback under the cap logs in (control)."""
    async with running_op_stack(customize=_form_post_mode) as stack:
        for padded in (True, False):
            async with aiohttp.ClientSession(cookie_jar=jar()) as http:
                flow = await begin_login(http, stack)
                login_cookie = flow.start.set_cookies["gw_session_login"].value
            params = dict(parse_qsl(urlsplit(flow.callback_url).query))
            form = "&".join(f"{k}={v}" for k, v in params.items()).encode()
            if padded:
                form += b"&pad=" + b"a" * 100_000
            stack.op.token_requests.clear()
            raw = await _post_callback(stack, login_cookie, form, chunked=chunked)
            assert_no_traceback(raw.text)
            if padded:
                assert raw.status in (400, 413), (raw.status, raw.text[-300:])
                assert stack.op.token_requests == []
                assert "gw_session=" not in raw.head.replace('gw_session=""', "")
            else:
                assert raw.status == 302, raw.text[-300:]
                assert len(stack.op.token_requests) == 1


async def test_t45_slow_clients_do_not_starve_normal_requests(op_stack: OpStack) -> None:
    """T45: the gateway has no read timeouts of its own (README "Not yet": the front proxy sets them), but
    100 dribbling headers and 100 stalled 1 MB bodies must not stop a normal request finishing in < 1 s."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        cookie = {c.key: c.value for c in http.cookie_jar}["gw_session"]
    writers: list[asyncio.StreamWriter] = []
    try:
        for i in range(200):
            _, writer = await asyncio.open_connection("127.0.0.1", op_stack.port)
            if i % 2:
                writer.write(b"GET /private/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ")
            else:
                writer.write(b"POST /public/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\nx")
            await writer.drain()
            writers.append(writer)
        await asyncio.sleep(0.2)
        timings = []
        async with aiohttp.ClientSession() as http:
            for _ in range(20):
                started = time.perf_counter()
                answer = await fetch(http, "GET", f"{op_stack.url}/private/x",
                                     headers={"Cookie": f"gw_session={cookie}"})
                timings.append(time.perf_counter() - started)
                assert answer.status == 200
        assert max(timings) < 1.0, timings
    finally:
        for writer in writers:
            writer.close()


# ------------------------------------------------------------------------------------------------ T51


@pytest.fixture
def compare_digest_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    calls: list[tuple[bytes, bytes]] = []
    original: Callable[[Any, Any], bool] = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((bytes(a, "utf-8") if isinstance(a, str) else bytes(a),
                      bytes(b, "utf-8") if isinstance(b, str) else bytes(b)))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def _compared(calls: list[tuple[bytes, bytes]], value: str) -> bool:
    return any(value.encode() in pair for pair in calls)


async def test_t51_state_and_nonce_are_compared_with_compare_digest(
    op_stack: OpStack, compare_digest_calls: list[tuple[bytes, bytes]]
) -> None:
    """T51, dynamically: a wrong state of equal length is refused after a hmac.compare_digest against the real
    one, and a good login compares its state, nonce and RFC 9207 iss the same way (no ``==`` on secrets)."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        wrong = ("B" if flow.state[0] != "B" else "C") + flow.state[1:]
        refused = await fetch(http, "GET", callback_with(flow, state=wrong), headers={"Accept": "text/html"})
        assert refused.status == 400
        assert (wrong.encode(), flow.state.encode()) in compare_digest_calls \
            or (flow.state.encode(), wrong.encode()) in compare_digest_calls, compare_digest_calls
        compare_digest_calls.clear()
        flow = await begin_login(http, op_stack)
        done = await finish_login(http, flow)
        assert done.status == 302 and done.sets("gw_session")
    assert _compared(compare_digest_calls, flow.state), "the state was not compared with compare_digest"
    assert _compared(compare_digest_calls, flow.nonce), "the nonce was not compared with compare_digest"
    assert _compared(compare_digest_calls, op_stack.op.issuer), "iss was not compared with compare_digest"
