"""attacks.md B: Host and X-Forwarded-* are not trusted from the client (T06-T08), and there is no
forward-auth endpoint to fool (T07 second half)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest

from tests.security.helpers import raw_http, request_bytes
from tests.support.fake_op import OpStack, fetch, jar, login, running_op_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

SPOOFS: list[dict[str, str]] = [
    {"Host": "evil.example"},
    {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http", "Forwarded": "host=evil.example"},
    {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"},
    {"Forwarded": 'for=1.2.3.4;host=evil.example;proto=https'},
    {"X-Forwarded-Prefix": "//evil.example", "X-Original-Host": "evil.example"},
    {"Host": "evil.example", "X-Forwarded-Host": "evil.example, app.example.test"},
]


def _redirect_uri_of(location: str) -> list[str]:
    return parse_qs(urlsplit(location).query)["redirect_uri"]


@pytest.mark.parametrize("spoof", SPOOFS)
async def test_t06_redirect_uri_is_byte_identical_whatever_the_host_headers(op_stack: OpStack,
                                                                           spoof: dict[str, str]) -> None:
    expected = op_stack.callback_url
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        first = await fetch(http, "GET", f"{op_stack.url}/private/x", headers={"Accept": "text/html", **spoof})
        assert first.status == 302 and first.location is not None
        assert urlsplit(first.location).netloc == ""  # the login redirect stays on this origin
        api = await fetch(http, "GET", f"{op_stack.url}/private/x", headers=spoof)
        assert api.status == 401
        assert "evil" not in api.body
        start = await fetch(http, "GET", f"{op_stack.url}{first.location}", headers={"Accept": "text/html", **spoof})
    assert start.status == 302 and start.location is not None
    assert start.location.startswith(op_stack.op.url + "/authorize?")
    assert _redirect_uri_of(start.location) == [expected]
    assert "redirect_uri=" + quote(expected, safe="") in start.location
    assert "evil" not in start.location
    assert op_stack.echo.requests == []


async def test_t06_raw_host_header_variants(op_stack: OpStack) -> None:
    for host in ("evil.example", "evil.example:80", "127.0.0.1@evil.example", ""):
        raw = await raw_http(op_stack.port, request_bytes("/_auth/login?rd=/x", host=host))
        assert raw.status in (302, 400, 421), raw.text
        if raw.status == 302:
            location = raw.header("Location") or ""
            assert _redirect_uri_of(location) == [op_stack.callback_url]


async def test_t06_trusted_proxy_still_cannot_move_the_redirect_uri() -> None:
    def trust_loopback(config: dict[str, Any]) -> None:
        config["trusted_proxies"] = ["127.0.0.1/32"]

    async with running_op_stack(customize=trust_loopback) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        start = await fetch(http, "GET", f"{stack.url}/_auth/login?rd=/x",
                            headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
    assert start.status == 302 and start.location is not None
    assert _redirect_uri_of(start.location) == [stack.callback_url]


@pytest.mark.parametrize("spoof", SPOOFS)
async def test_t06_upstream_never_gets_a_client_chosen_host(op_stack: OpStack, spoof: dict[str, str]) -> None:
    """The upstream trusts the gateway's X-Forwarded-Host for absolute links (password-reset poisoning):
    a Host the deployment does not serve must be refused (400/421) or replaced by the configured one."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        answer = await fetch(http, "GET", f"{op_stack.url}/private/x", headers=spoof)
        public = await fetch(http, "GET", f"{op_stack.url}/public/x", headers=spoof)
    assert answer.status in (200, 400, 421) and public.status in (200, 400, 421)
    configured = urlsplit(op_stack.config["public_url"]).netloc
    for seen in op_stack.echo.requests:
        for name in ("Host", "X-Forwarded-Host", "Forwarded", "X-Forwarded-Server"):
            assert "evil" not in ",".join(seen.headers.getall(name, [])), (name, seen.headers.getall(name))
        assert seen.headers.getall("X-Forwarded-Host", [configured]) == [configured]


# ------------------------------------------------------------------------------------------------ T07

ROUTE_SPOOFS = [
    {"X-Forwarded-Uri": "/public/x", "X-Original-URL": "/public/x"},
    {"X-Original-URI": "/public/x", "X-Rewrite-URL": "/public/x"},
    {"X-Forwarded-Prefix": "/public", "X-Forwarded-Path": "/public/x"},
    {"X-Forwarded-Uri": "/healthz", "X-Forwarded-Method": "GET"},
    {"X-HTTP-Method-Override": "OPTIONS", "X-Original-Method": "OPTIONS"},
]


@pytest.mark.parametrize("spoof", ROUTE_SPOOFS)
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "OPTIONS"])
async def test_t07_routing_headers_do_not_make_a_private_path_public(op_stack: OpStack, spoof: dict[str, str],
                                                                     method: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        html = await fetch(http, method, f"{op_stack.url}/private/admin", headers={"Accept": "text/html", **spoof})
        api = await fetch(http, method, f"{op_stack.url}/private/admin", headers=spoof)
    assert html.status in (302, 401), html.body
    assert api.status == 401
    assert op_stack.echo.requests == []


@pytest.mark.parametrize("spoof", ROUTE_SPOOFS)
async def test_t07_routing_headers_never_reach_the_upstream(op_stack: OpStack, spoof: dict[str, str]) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        public = await fetch(http, "GET", f"{op_stack.url}/public/x", headers=spoof)
        assert public.status == 200
        assert (await login(http, op_stack)).sets("gw_session")
        private = await fetch(http, "GET", f"{op_stack.url}/private/x", headers=spoof)
        assert private.status == 200
    assert [r.path for r in op_stack.echo.requests] == ["/public/x", "/private/x"]
    for seen in op_stack.echo.requests:
        for name in spoof:
            if name.lower() in ("x-forwarded-path", "x-original-host"):
                continue  # not a name the gateway claims; passing it on is harmless to its decision
            assert name not in seen.headers, (name, seen.headers)


@pytest.mark.parametrize("path", ["/_auth/forward", "/_auth/verify", "/_auth/auth", "/_auth/check"])
async def test_t07_t20_no_forward_auth_endpoint_answers_2xx(op_stack: OpStack, path: str) -> None:
    spoof = {"X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET", "X-Original-URL": "/public/x",
             "X-Auth-Ssn": "190001019999"}
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        answer = await fetch(http, "GET", f"{op_stack.url}{path}", headers=spoof)
    # /_auth/verify exists; from a caller outside trusted_proxies it refuses before reading any header.
    assert answer.status == (403 if path == "/_auth/verify" else 404)
    assert "X-Auth-Ssn" not in answer.headers
    assert op_stack.echo.requests == []


# ------------------------------------------------------------------------------------------------ T08

XFF_SPOOFS = [
    {"X-Forwarded-For": "127.0.0.1, 10.0.0.1", "X-Real-IP": "127.0.0.1"},
    {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "X-Client-IP": "6.6.6.6"},
    {"Forwarded": "for=6.6.6.6", "X-Forwarded-For": "6.6.6.6, 7.7.7.7"},
]


@pytest.mark.parametrize("spoof", XFF_SPOOFS)
async def test_t08_upstream_gets_a_gateway_written_x_forwarded_for(op_stack: OpStack, spoof: dict[str, str]) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await fetch(http, "GET", f"{op_stack.url}/public/x", headers=spoof)).status == 200
        assert (await login(http, op_stack)).sets("gw_session")
        assert (await fetch(http, "GET", f"{op_stack.url}/private/x", headers=spoof)).status == 200
    assert len(op_stack.echo.requests) == 2
    for seen in op_stack.echo.requests:
        assert seen.headers.getall("X-Forwarded-For") == ["127.0.0.1"], seen.headers
        assert seen.headers.getall("X-Forwarded-Proto") == ["http"]
        assert "X-Real-IP" not in seen.headers and "X-Client-IP" not in seen.headers
        assert "Forwarded" not in seen.headers
        assert "6.6.6.6" not in str(list(seen.headers.items()))


async def test_t08_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() -> None:
    def trust_loopback(config: dict[str, Any]) -> None:
        config["trusted_proxies"] = ["127.0.0.1/32"]

    async with running_op_stack(customize=trust_loopback) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        answer = await fetch(http, "GET", f"{stack.url}/public/x",
                             headers={"X-Forwarded-For": "6.6.6.6, 10.0.0.1", "X-Real-IP": "6.6.6.6"})
        assert answer.status == 200
        seen = stack.echo.requests[-1]
    chain = seen.headers.getall("X-Forwarded-For")
    assert len(chain) == 1
    # The chain holds what the gateway believes: the client (the right-most untrusted hop), the trusted hops
    # after it and the peer it got the request from (the proxy); never the client-written part left of it.
    assert chain[0] == "10.0.0.1, 127.0.0.1"
    assert "X-Real-IP" not in seen.headers


#: Client-address headers that common frameworks and CDNs read (Rails reads Client-IP, Akamai and nginx
#: set True-Client-IP, Cloudflare CF-Connecting-IP): beyond the catalogue's list, same T08 threat.
OTHER_CLIENT_IP_HEADERS = ["True-Client-IP", "Client-IP", "CF-Connecting-IP", "X-Cluster-Client-IP",
                           "Fastly-Client-IP", "X-Originating-IP"]


async def test_t08_other_client_ip_headers_are_not_passed_through(op_stack: OpStack) -> None:
    spoof = {name: "6.6.6.6" for name in OTHER_CLIENT_IP_HEADERS}
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        assert (await fetch(http, "GET", f"{op_stack.url}/private/x", headers=spoof)).status == 200
    seen = op_stack.echo.requests[-1]
    leaked = [name for name in OTHER_CLIENT_IP_HEADERS if name in seen.headers]
    assert leaked == [], f"client-chosen address headers reached the upstream: {leaked}"
