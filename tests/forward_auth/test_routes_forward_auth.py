"""Forward-auth for two hosts with routes (issue 17): two real nginx servers running the shipped
deploy/nginx/auth_request.conf, one per host, each in front of its own application, both asking the same
gateway. /_auth/verify picks the route from the forwarded host, so each application gets only its route's
claims; a host no route names is refused (404 from the gateway, 500 from nginx), never passed on."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from gateway.devidp import DevClient, create_devidp_app
from gateway.server import RunningGateway
from tests.forward_auth.support import ASA, Nginx, manual_login, raw_get, raw_request, running_nginx, verify_assertion
from tests.support.echo import EchoUpstream
from tests.support.gateway import run_gateway
from tests.support.ports import free_port
from tests.support.stack import CLIENT_ID

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Env:
    gateway: RunningGateway
    nginx: dict[str, Nginx]
    apps: dict[str, EchoUpstream]
    session: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env() -> AsyncIterator[Env]:
    idp_port, gateway_port = free_port(), free_port()
    ports = {"a": free_port(), "b": free_port()}
    issuer = f"http://127.0.0.1:{idp_port}"
    public_url = f"http://a.localhost:{ports['a']}"  # browsers log in on host a
    secret = secrets.token_urlsafe(24)
    apps = {name: EchoUpstream() for name in ports}
    for app in apps.values():
        await app.__aenter__()
    idp = create_devidp_app(
        issuer=issuer,
        clients=[DevClient(client_id=CLIENT_ID, auth_method="client_secret_basic", client_secret=secret,
                           redirect_uris=(f"{public_url}/_auth/callback/dev",))],
    )
    runner = web.AppRunner(idp, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", idp_port).start()
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{gateway_port}",
        "public_url": public_url,
        "trusted_proxies": ["127.0.0.1/32"],
        "providers": [{"name": "dev", "issuer": issuer, "client_id": CLIENT_ID, "client_secret": secret,
                       "claims": {"ssn": "ssn", "name": "name", "country": "country"}}],
        "session": {"secret": secrets.token_urlsafe(32)},
        "rate_limits": {"login_per_client": "off"},
        "routes": [
            # The upstream is the ingress's business here; the gateway still requires one per route.
            {"name": "a", "match": {"host": "a.localhost"}, "upstream": apps["a"].url,
             "headers": {"name": "X-Auth-Name"}},
            {"name": "b", "match": {"host": "b.localhost"}, "upstream": apps["b"].url,
             "headers": {"ssn": "X-Auth-Ssn", "country": "X-Auth-Country"}},
        ],
    }
    try:
        async with run_gateway(config) as gateway:
            gateway_address = f"127.0.0.1:{gateway_port}"
            async with (
                running_nginx(port=ports["a"], gateway=gateway_address, upstream=urlsplit(apps["a"].url).netloc,
                              server_name="a.localhost") as nginx_a,
                running_nginx(port=ports["b"], gateway=gateway_address, upstream=urlsplit(apps["b"].url).netloc,
                              server_name="b.localhost") as nginx_b,
            ):
                login = await manual_login(gateway.url, f"{public_url}/_auth/login?rd=/")
                yield Env(gateway=gateway, nginx={"a": nginx_a, "b": nginx_b}, apps=apps,
                          session=login.cookies["gw_session"])
    finally:
        await runner.cleanup()
        for app in apps.values():
            await app.__aexit__(None, None, None)


SPOOFS = [("X-Auth-Ssn", "190001019999"), ("X-Auth-Name", "Mallory"), ("X-Auth-Country", "XX")]


@pytest.mark.parametrize(("host", "expected"), [
    ("a", {"X-Auth-Name": ASA["name"]}),
    ("b", {"X-Auth-Ssn": ASA["ssn"], "X-Auth-Country": ASA["country"]}),
])
async def test_each_host_gets_only_its_routes_headers(env: Env, host: str, expected: dict[str, str]) -> None:
    nginx = env.nginx[host]
    before = len(env.apps[host].requests)
    raw = await raw_request(
        nginx.port, raw_get("/page", [("Cookie", f"gw_session={env.session}"), *SPOOFS], host=f"{host}.localhost")
    )
    assert raw.status == 200, (raw.body, nginx.log())
    assert len(env.apps[host].requests) == before + 1
    seen = env.apps[host].requests[-1].headers
    identity = {name: seen[name] for name in ("X-Auth-Ssn", "X-Auth-Name", "X-Auth-Country") if name in seen}
    assert identity == expected  # exactly the route's claims: no more, and never a client's
    async with aiohttp.ClientSession() as http:
        claims = await verify_assertion(http, f"{env.gateway.url}/_auth/jwks.json", seen["X-Auth-Assertion"])
    assert claims["aud"] == host
    assert ("ssn" in claims) == (host == "b") and ("name" in claims) == (host == "a")


async def test_verify_answers_404_for_a_host_no_route_names(env: Env) -> None:
    headers = {"Cookie": f"gw_session={env.session}", "X-Original-URL": "http://c.localhost/page",
               "X-Original-Method": "GET"}
    async with aiohttp.ClientSession() as http, http.get(f"{env.gateway.url}/_auth/verify", headers=headers) as resp:
        assert resp.status == 404 and (await resp.json()) == {"error": "no_route"}
        assert "X-Auth-Name" not in resp.headers and "X-Auth-Assertion" not in resp.headers


async def test_the_route_is_the_forwarded_hosts_not_the_callers(env: Env) -> None:
    """Asked about host b through nginx a's contract, the answer carries b's claims: the decision follows the
    original request, and each nginx only ever asks about its own server_name (others get 421)."""
    headers = {"Cookie": f"gw_session={env.session}", "X-Original-URL": "http://b.localhost/page",
               "X-Original-Method": "GET"}
    async with aiohttp.ClientSession() as http, http.get(f"{env.gateway.url}/_auth/verify", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["X-Auth-Ssn"] == ASA["ssn"] and "X-Auth-Name" not in resp.headers
    before = len(env.apps["a"].requests)
    raw = await raw_request(env.nginx["a"].port, raw_get("/page", [("Cookie", f"gw_session={env.session}")],
                                                         host="b.localhost"))
    assert raw.status == 421 and len(env.apps["a"].requests) == before
