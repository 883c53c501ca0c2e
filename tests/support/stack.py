"""A full stack on loopback for integration tests: the development IdP, a recording echo upstream and the
real gateway, each on its own free port; plus a scripted browser login through the IdP's person picker."""

from __future__ import annotations

import html.parser
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp import web

from gateway import keys
from gateway.devidp import DevClient, create_devidp_app
from gateway.server import RunningGateway
from tests.support.echo import EchoUpstream
from tests.support.gateway import run_gateway
from tests.support.ports import free_port

CLIENT_ID = "gw-test"


@dataclass
class Stack:
    gateway: RunningGateway
    echo: EchoUpstream
    issuer: str
    config: dict[str, Any]

    @property
    def url(self) -> str:
        return self.gateway.url


def base_config(
    *, gateway_port: int, metrics_port: int, issuer: str, upstream: str, client_secret: str
) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{gateway_port}",
        "public_url": f"http://127.0.0.1:{gateway_port}",
        "upstream": upstream,
        "providers": [
            {
                "name": "dev",
                "flow": "redirect",
                "issuer": issuer,
                "client_id": CLIENT_ID,
                "client_auth": "client_secret_basic",
                "client_secret": client_secret,
                "scopes": ["openid", "profile"],
                "claims": {"ssn": "ssn", "name": "name", "country": "country"},
            }
        ],
        "session": {"secret": secrets.token_urlsafe(32), "lifetime": "8h", "idle_timeout": "1h"},
        "headers": {"ssn": "X-Auth-Ssn", "name": "X-Auth-Name", "country": "X-Auth-Country"},
        "assertion": {"header": "X-Auth-Assertion", "audience": "upstream", "ttl": "60s"},
        "public_paths": ["/healthz", "/public/"],
        "trusted_proxies": [],
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        # The suite starts hundreds of logins a minute from 127.0.0.1, and CIBA logins for the same test
        # people: the limits (on by default) would refuse them. tests/security/test_rate_limits.py tests
        # them, at their defaults and as configured.
        "rate_limits": {"login_per_client": "off", "poll_start_per_client": "off", "ciba_per_person": "off"},
    }


async def start_dev_idp(
    port: int,
    issuer: str,
    *,
    public_url: str,
    auth_method: str = "client_secret_basic",
    secret: str | None = None,
    jwks: tuple[Any, ...] = (),
) -> web.AppRunner:
    """The development IdP on ``port`` with the gateway's client ``dev`` registered for ``public_url``; the
    caller cleans the runner up."""
    app = create_devidp_app(
        issuer=issuer,
        clients=[
            DevClient(
                client_id=CLIENT_ID,
                auth_method=auth_method,
                client_secret=secret,
                jwks=jwks,
                redirect_uris=(f"{public_url}/_auth/callback/dev",),
                post_logout_redirect_uris=(f"{public_url}/_auth/logged-out",),
            )
        ],
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@asynccontextmanager
async def running_stack(
    *, customize: Any = None, client_auth: str = "client_secret_basic", tmp_path: Path | None = None
) -> AsyncIterator[Stack]:
    idp_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    secret = secrets.token_urlsafe(24)
    async with EchoUpstream() as echo:
        config = base_config(
            gateway_port=gateway_port, metrics_port=metrics_port, issuer=issuer, upstream=echo.url, client_secret=secret
        )
        jwks: tuple[Any, ...] = ()
        if client_auth == "private_key_jwt":
            assert tmp_path is not None
            pem = keys.generate_ec_pem()
            (tmp_path / "client.pem").write_bytes(pem)
            jwks = (keys.signing_key_from_pem(pem).public,)
            config["providers"][0].update(client_auth="private_key_jwt", private_key_file="client.pem")
            config["providers"][0].pop("client_secret")
        else:
            config["providers"][0]["client_auth"] = client_auth
        if customize is not None:
            customize(config)
        runner = await start_dev_idp(
            idp_port,
            issuer,
            public_url=config["public_url"],
            auth_method=client_auth,
            secret=secret if not jwks else None,
            jwks=jwks,
        )
        try:
            async with run_gateway(config, base_dir=tmp_path) as gateway:
                yield Stack(gateway=gateway, echo=echo, issuer=issuer, config=config)
        finally:
            await runner.cleanup()


class _Forms(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = {"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {}, "text": ""}
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and a.get("name"):
            self._current["fields"][a["name"]] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def parse_forms(page: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


async def follow(
    http: aiohttp.ClientSession, response: aiohttp.ClientResponse, limit: int = 10
) -> aiohttp.ClientResponse:
    """Follow redirects by hand so every hop's cookies and status are visible to the test."""
    for _ in range(limit):
        if response.status not in (301, 302, 303, 307):
            return response
        url = urljoin(str(response.url), response.headers["Location"])
        response = await http.get(url, headers={"Accept": "text/html"}, allow_redirects=False)
    raise AssertionError("too many redirects")


async def browser_login(
    http: aiohttp.ClientSession, url: str, *, person: str = "Åsa Öberg", cancel: bool = False
) -> aiohttp.ClientResponse:
    """Open ``url`` like a browser, pick ``person`` at the development IdP, and return the final response."""
    response = await follow(http, await http.get(url, headers={"Accept": "text/html"}, allow_redirects=False))
    page = await response.text()
    forms = parse_forms(page)
    wanted = "Cancel" if cancel else f"Log in as {person}"
    form = next(f for f in forms if wanted in f["text"])
    action = urljoin(str(response.url), form["action"])
    answer = await http.post(action, data=form["fields"], allow_redirects=False, headers={"Accept": "text/html"})
    if answer.status == 200 and "<form" in (body := await answer.text()):  # form_post: submit like the browser
        post = parse_forms(body)[0]
        answer = await http.post(
            urljoin(str(answer.url), post["action"]),
            data=post["fields"],
            allow_redirects=False,
            headers={"Accept": "text/html"},
        )
    return await follow(http, answer)
