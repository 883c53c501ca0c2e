"""Real processes and small tools for the fault tests: the development IdP (``python -m gateway.devidp``),
a JSON echo upstream (upstream_app.py), redis-server, a TCP proxy whose delay the test controls, a
browser login that can stop just before the callback, and the identity-leak check.

Every process runs in its own process group on a loopback port from tests.support.ports; the context
managers here kill that group on the way out, also when the test failed."""

from __future__ import annotations

import asyncio
import html
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp
import pytest

from gateway.devidp import TEST_PERSONS, TestPerson
from gateway.keys import generate_ec_pem
from tests.support.ports import free_port
from tests.support.process import fresh_session
from tests.support.stack import CLIENT_ID, base_config, follow, parse_forms

HTML = {"Accept": "text/html"}
REDIS_SERVER = Path("/usr/bin/redis-server")
UPSTREAM_APP = Path(__file__).with_name("upstream_app.py")

#: The session stores test 5 (and the IdP-down test) run against.
STORES = [pytest.param("cookie", id="cookie"), pytest.param("redis", id="redis")]


def person(person_id: str) -> TestPerson:
    return next(p for p in TEST_PERSONS if p.id == person_id)


# ---------------------------------------------------------------------------------------------- processes


@dataclass
class Service:
    """One server process (its own process group) listening on ``port``."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None, f"{self.name} already runs"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_listening(self, timeout: float = 15.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.03)
                continue
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
            return
        raise AssertionError(f"{self.name} not listening on {self.port} after {timeout}s:\n{self.log()}")

    async def restart(self) -> None:
        self.kill()
        self.start()
        await self.wait_listening()

    def kill(self) -> None:
        """SIGKILL the whole process group and reap the process (a crash, as far as peers can tell)."""
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    async def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM, then SIGKILL of the group after ``timeout`` seconds."""
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self.kill()


@asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    try:
        service.start()
        await service.wait_listening()
        yield service
    finally:
        await service.stop()


def write_key(path: Path) -> Path:
    """A fresh EC P-256 key (ES256; its kid is the RFC 7638 thumbprint, so a new key is a new kid)."""
    path.write_bytes(generate_ec_pem())
    return path


def dev_idp(
    tmp: Path, *, port: int, issuer: str, client_secret: str, redirect_uris: list[str], key_file: Path
) -> Service:
    argv = [
        sys.executable, "-m", "gateway.devidp", "--port", str(port), "--issuer", issuer,
        # "=": a random secret may start with "-", which argparse would take for an option.
        "--client-id", CLIENT_ID, f"--client-secret={client_secret}", "--signing-key", str(key_file),
    ]
    for uri in redirect_uris:
        argv.append(f"--redirect-uri={uri}")
    return Service("dev IdP", argv, port, tmp / "idp.log")


def upstream(tmp: Path, port: int | None = None) -> Service:
    port = port or free_port()
    return Service("upstream", [sys.executable, str(UPSTREAM_APP), "--port", str(port)], port, tmp / "upstream.log")


def redis(tmp: Path) -> Service:
    port = free_port()
    argv = [str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return Service("redis-server", argv, port, tmp / "redis.log")


@dataclass
class Store:
    """A session store for a test: the ``session`` config keys, and our redis-server if there is one."""

    keys: dict[str, Any]
    redis_port: int | None = None

    async def assert_holds_sessions(self) -> None:
        """With Redis: sessions really are kept there (DBSIZE > 0), the key was not silently ignored."""
        if self.redis_port is None:
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
        try:
            writer.write(b"*1\r\n$6\r\nDBSIZE\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()
        assert answer.startswith(b":") and int(answer[1:]) > 0, f"redis DBSIZE answered {answer!r}"


@asynccontextmanager
async def session_store(store: str, tmp: Path) -> AsyncIterator[Store]:
    """The cookie store (no keys), or for "redis" our own redis-server on a free loopback port."""
    if store == "cookie":
        yield Store({})
        return
    assert store == "redis", store
    if not REDIS_SERVER.exists():
        pytest.skip(f"{REDIS_SERVER} is not installed")
    async with running(redis(tmp)) as server:
        yield Store({"store": f"redis://127.0.0.1:{server.port}/0"}, redis_port=server.port)


# ---------------------------------------------------------------------------------------------- a stack


@dataclass
class Plan:
    """Ports, secrets and the gateway config for one dev IdP (possibly behind a proxy) and one upstream."""

    tmp: Path
    upstream_url: str
    idp_port: int = field(default_factory=free_port)
    issuer_port: int = 0  # the port in the issuer URL: the IdP's own, or a proxy's in front of it
    gateway_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.issuer_port = self.issuer_port or self.idp_port
        self.config = base_config(
            gateway_port=self.gateway_port,
            metrics_port=self.metrics_port,
            issuer=self.issuer,
            upstream=self.upstream_url,
            client_secret=self.client_secret,
        )
        self.config["log_level"] = "warning"
        self.config["shutdown_grace"] = "1s"  # the end of each test waits for the drain notice (grace / 2)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.issuer_port}"

    def idp(self, key_file: Path) -> Service:
        return dev_idp(
            self.tmp,
            port=self.idp_port,
            issuer=self.issuer,
            client_secret=self.client_secret,
            redirect_uris=[f"{self.config['public_url']}/_auth/callback/dev"],
            key_file=key_file,
        )


def jar_session() -> aiohttp.ClientSession:
    """A browser-like client: cookies for 127.0.0.1, a new connection per request, no silent resend."""
    return fresh_session(cookie_jar=aiohttp.CookieJar(unsafe=True))


# ---------------------------------------------------------------------------------------------- browser


async def login_until_callback(http: aiohttp.ClientSession, url: str, who: TestPerson) -> str:
    """Open ``url``, pick ``who`` at the dev IdP; return the callback URL the IdP sends the browser to,
    without opening it (so the test can break the IdP between the person's choice and the callback)."""
    response = await follow(http, await http.get(url, headers=HTML, allow_redirects=False))
    page = await response.text()
    assert response.status == 200, f"IdP login page: HTTP {response.status}: {page[:500]}"
    form = next(f for f in parse_forms(page) if f"Log in as {who.name}" in f["text"])
    answer = await http.post(
        urljoin(str(response.url), form["action"]), data=form["fields"], allow_redirects=False, headers=HTML
    )
    await answer.read()
    assert answer.status in (302, 303), f"IdP decide: HTTP {answer.status}"
    return urljoin(str(answer.url), answer.headers["Location"])


async def login(http: aiohttp.ClientSession, start_url: str, who: TestPerson) -> dict[str, Any]:
    """A complete login through the dev IdP from ``start_url`` (a protected page, or a login link); it must
    end on the upstream with ``who``'s identity. Returns the upstream's echo of that last request."""
    callback = await login_until_callback(http, start_url, who)
    final = await follow(http, await http.get(callback, headers=HTML, allow_redirects=False))
    body = await final.text()
    assert final.status == 200, f"login as {who.name}: HTTP {final.status}: {body[:800]}"
    echoed: dict[str, Any] = await final.json(content_type=None)
    assert echoed["headers"].get("X-Auth-Ssn") == who.ssn, echoed
    assert "X-Auth-Assertion" in echoed["headers"], echoed
    return echoed


async def get_echo(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url, headers={"Accept": "application/json"}, allow_redirects=False) as resp:
        return resp.status, await resp.json(content_type=None)


# ---------------------------------------------------------------------------------------------- checks


def identity_forms(who: TestPerson) -> set[str]:
    """Every way a person's identity could show up in a page or a header."""
    forms = {who.ssn, who.subject}
    for text in (who.name, who.given_name, who.family_name):
        forms |= {text, html.escape(text), quote(text), "UTF-8''" + quote(text, safe=""), text.encode().hex()}
        forms.add(text.encode("ascii", "xmlcharrefreplace").decode())
    return forms


def assert_no_identity(body: str, headers: Any, who: TestPerson) -> None:
    """No national ID, name, subject or assertion in an error answer (body and headers)."""
    leaked = sorted(f for f in identity_forms(who) if f in body)
    assert not leaked, f"identity in the error body: {leaked}\n{body}"
    assert "eyJ" not in body, f"a JWT in the error body:\n{body}"
    for name, value in headers.items():
        assert not name.lower().startswith("x-auth"), f"identity header {name} on the error answer"
        assert "eyJ" not in value or name.lower() == "set-cookie", f"a JWT in header {name}: {value}"
        assert not [f for f in identity_forms(who) if f in value], f"identity in header {name}: {value}"


def assert_clean_error_page(body: str, status: int, content_type: str) -> None:
    """An operator's look at an error page: the gateway's own HTML, no stack trace, no internals."""
    assert content_type == "text/html", f"HTTP {status} as {content_type}: {body[:500]}"
    assert body.startswith("<!doctype html>"), body[:500]
    for internal in ("Traceback", 'File "', "aiohttp", "Exception", "Error:", "/work/", "site-packages"):
        assert internal not in body, f"{internal!r} in the error page:\n{body}"


# ---------------------------------------------------------------------------------------------- slow proxy


@dataclass
class SlowProxy:
    """A TCP proxy on loopback in front of ``target_port``. While ``delay`` > 0, every chunk a client sends
    is held that long before it goes on: the server behind it looks slow (or hung), not down."""

    target_port: int
    port: int = field(default_factory=free_port)
    delay: float = 0.0
    #: Chunks that were held back because ``delay`` was set: proof that a request met the slow IdP.
    held: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def __aenter__(self) -> SlowProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._writers.add(client_writer)
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._writers.add(server_writer)
        await asyncio.gather(
            self._pipe(client_reader, server_writer, slow=True),
            self._pipe(server_reader, client_writer, slow=False),
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, slow: bool) -> None:
        try:
            while data := await reader.read(65536):
                if slow and self.delay > 0:
                    self.held += 1
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
