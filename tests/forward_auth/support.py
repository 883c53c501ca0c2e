"""Shared by the forward-auth tests: real nginx running deploy/nginx/auth_request.conf in front of the
recording echo upstream with the real gateway behind it, raw-socket HTTP, and a login that handles the
cookies by hand (for public_url origins the test client cannot reach by name).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict

from gateway.protocol import jws
from tests.support.ports import free_port, wait_for_port
from tests.support.stack import Stack, parse_forms, running_stack

REPO = Path(__file__).resolve().parents[2]
SITE_TEMPLATE = REPO / "deploy" / "nginx" / "auth_request.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
START_TIMEOUT = 10.0

#: The gateway's identity headers (config defaults) and its assertion header: the protected names.
IDENTITY_HEADERS = ("X-Auth-Ssn", "X-Auth-Name", "X-Auth-Country", "X-Auth-Assertion")
ASA = {"ssn": "199003152387", "name": "UTF-8''%C3%85sa%20%C3%96berg", "country": "SE"}
KARI = {"ssn": "27034698436", "name": "Kari Nordmann", "country": "NO"}


def render_site(*, listen: str, server_name: str, gateway: str, upstream: str) -> str:
    """The shipped site file with its placeholders filled in, exactly as the README tells users to."""
    text = SITE_TEMPLATE.read_text(encoding="utf-8")
    for placeholder, value in {
        "@LISTEN@": listen,
        "@SERVER_NAME@": server_name,
        "@GATEWAY@": gateway,
        "@UPSTREAM@": upstream,
    }.items():
        assert placeholder in text, placeholder
        text = text.replace(placeholder, value)
    assert "@" not in text.replace("@login", ""), "a placeholder was left unfilled"
    return text


def _main_conf(prefix: Path) -> str:
    temp = prefix / "tmp"
    # Run as the current user (as root nginx would otherwise switch its workers to "nobody").
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        "    access_log off;\n"
        f"    client_body_temp_path {temp}/body;\n"
        f"    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n"
        f"    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n"
        f"    include {prefix}/site.conf;\n"
        "}\n"
    )


@dataclass
class Nginx:
    url: str
    port: int
    prefix: Path
    process: asyncio.subprocess.Process

    def log(self) -> str:
        return (self.prefix / "stderr.log").read_text(errors="replace")


@asynccontextmanager
async def running_nginx(
    *, port: int, gateway: str, upstream: str, server_name: str = "127.0.0.1"
) -> AsyncIterator[Nginx]:
    """nginx in the foreground, as the current user, everything (pid, temp files, logs) under a temp prefix."""
    prefix = Path(tempfile.mkdtemp(prefix="eidgw-nginx-"))
    try:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "tmp" / sub).mkdir(parents=True)
        (prefix / "site.conf").write_text(
            render_site(listen=f"127.0.0.1:{port}", server_name=server_name, gateway=gateway, upstream=upstream)
        )
        (prefix / "nginx.conf").write_text(_main_conf(prefix))
        log = prefix / "stderr.log"
        with log.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                NGINX,
                "-e", "stderr",
                "-p", str(prefix),
                "-c", str(prefix / "nginx.conf"),
                "-g", f"daemon off; pid {prefix}/nginx.pid; error_log stderr;",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        try:
            await wait_for_port(port, process, log, name="nginx", timeout=START_TIMEOUT)
            yield Nginx(url=f"http://127.0.0.1:{port}", port=port, prefix=prefix, process=process)
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 5)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@dataclass
class NginxStack:
    stack: Stack
    nginx: Nginx

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def gateway_url(self) -> str:
        return self.stack.url


@asynccontextmanager
async def running_nginx_stack(customize: Callable[[dict[str, Any]], None] | None = None) -> AsyncIterator[NginxStack]:
    """Dev IdP + echo upstream + gateway (public_url = nginx, trusting only 127.0.0.1) + nginx in front."""
    port = free_port()

    def configure(config: dict[str, Any]) -> None:
        # running_stack registers public_url + /_auth/callback/dev at the IdP after this runs.
        config["public_url"] = f"http://127.0.0.1:{port}"
        config["trusted_proxies"] = ["127.0.0.1/32"]
        if customize is not None:
            customize(config)

    async with running_stack(customize=configure) as stack:
        gateway = stack.config["listen"]
        upstream = urlsplit(stack.echo.url).netloc
        async with running_nginx(port=port, gateway=gateway, upstream=upstream) as nginx:
            yield NginxStack(stack=stack, nginx=nginx)


# ---------------------------------------------------------------- raw HTTP


@dataclass
class Raw:
    status: int
    headers: CIMultiDict[str]
    body: bytes = b""
    data: bytes = field(default=b"", repr=False)


async def raw_request(port: int, head: bytes, *, timeout: float = 5.0) -> Raw:
    """Send ``head`` exactly (no client normalisation) and read the one response until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    header_block, _, body = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return Raw(status=status, headers=headers, body=body, data=data)


def raw_get(target: str, headers: list[tuple[str, str]], *, host: str, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ---------------------------------------------------------------- assertions and logins


def protected_in(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every header whose name, lower-cased with _ for -, is a protected name (how WSGI/CGI read them)."""
    wanted = {h.lower() for h in IDENTITY_HEADERS}
    return [(k, v) for k, v in headers.items() if k.lower().replace("_", "-") in wanted]


async def verify_assertion(http: aiohttp.ClientSession, jwks_url: str, token: str) -> dict[str, Any]:
    async with http.get(jwks_url) as resp:
        assert resp.status == 200
        keys = jws.parse_jwks(await resp.json())
    return jws.verify(token, keys, algorithms={"ES256"})


def login_query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def _set_cookies(response: aiohttp.ClientResponse) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


def _on(base: str, url: str) -> str:
    """``url`` (on the configured public origin) sent to ``base`` (where the gateway really listens)."""
    parts = urlsplit(url)
    return base + parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class ManualLogin:
    final_location: str
    cookies: dict[str, str]  # every cookie the gateway set on the callback response, by name
    set_cookie_headers: list[str]


async def manual_login(gateway_url: str, login_url: str, *, person: str = "Åsa Öberg") -> ManualLogin:
    """Log in through the development IdP when the gateway's public origin is only a name in its config:
    every gateway URL is sent to ``gateway_url`` and its cookies are carried by hand (no jar rules)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(_on(gateway_url, login_url), allow_redirects=False) as start:
            assert start.status == 302, await start.text()
            authorize = start.headers["Location"]
            login_cookies = _set_cookies(start)
        async with http.get(authorize, headers={"Accept": "text/html"}) as page:
            assert page.status == 200, await page.text()
            form = next(f for f in parse_forms(await page.text()) if f"Log in as {person}" in f["text"])
            action = urljoin(str(page.url), form["action"])
        async with http.post(action, data=form["fields"], allow_redirects=False) as decided:
            assert decided.status in (302, 303), await decided.text()
            callback = decided.headers["Location"]
        cookie = "; ".join(f"{k}={v}" for k, v in login_cookies.items() if v)
        async with http.get(_on(gateway_url, callback), headers={"Cookie": cookie}, allow_redirects=False) as done:
            assert done.status == 302, await done.text()
            return ManualLogin(
                final_location=done.headers["Location"],
                cookies=_set_cookies(done),
                set_cookie_headers=done.headers.getall("Set-Cookie", []),
            )
