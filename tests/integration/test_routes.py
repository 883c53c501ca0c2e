"""Many applications behind one gateway (issue 17), end to end: the development IdP behind two provider
entries, the real gateway, and four recording upstreams. Each application receives exactly the claims its
route lists, under its own assertion audience; pairwise subjects are stable per person and sector; a request
no route matches reaches no upstream."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from gateway.devidp import DevClient, create_devidp_app
from gateway.protocol import jws
from gateway.protocol.claims import decode_header_value
from gateway.server import RunningGateway
from tests.support.echo import EchoUpstream
from tests.support.gateway import run_gateway
from tests.support.ports import free_port
from tests.support.stack import CLIENT_ID, browser_login

pytestmark = pytest.mark.asyncio(loop_scope="module")

ASA_SSN = "199003152387"
#: Every header name some route releases: a client-sent copy must never arrive on any route.
RELEASED_NAMES = ("X-Auth-Ssn", "X-Auth-Name", "X-Auth-Subject", "X-Auth-Country", "X-Auth-Assertion")
SPOOFS = [
    ("X-Auth-Ssn", "190001019999"),
    ("x-auth-ssn", "190001019999"),
    ("X_Auth_Ssn", "190001019999"),
    ("X-Auth-Subject", "forged-subject-forged-subject"),
    ("X-AUTH-NAME", "Mallory"),
    ("X-Auth-Assertion", "e30.e30.e30"),
]


@dataclass
class Env:
    gateway: RunningGateway
    upstreams: dict[str, EchoUpstream]
    public_host: str

    @property
    def url(self) -> str:
        return self.gateway.url

    def total_requests(self) -> int:
        return sum(len(e.requests) for e in self.upstreams.values())


def routes(upstreams: dict[str, EchoUpstream]) -> list[dict[str, Any]]:
    return [
        {
            "name": "portal",
            "match": {"path_prefix": "/portal/"},
            "upstream": upstreams["portal"].url,
            "headers": {"pairwise_sub": "X-Auth-Subject"},
        },
        {
            "name": "hr",
            "match": {"host": "hr.test"},
            "upstream": upstreams["hr"].url,
            "headers": {"ssn": "X-Auth-Ssn", "name": "X-Auth-Name"},
            "require": {"country": ["SE"]},
        },
        {
            "name": "wiki",
            "match": {"host": "intranet.test"},
            "upstream": upstreams["wiki"].url,
            "sector": "intranet",
            "headers": {"pairwise_sub": "X-Auth-Subject", "name": "X-Auth-Name"},
            "public_paths": ["/static/"],
        },
        {
            "name": "helpdesk",
            "match": {"host": "intranet.test", "path_prefix": "/helpdesk/"},
            "upstream": upstreams["helpdesk"].url,
            "strip_prefix": True,
            "sector": "intranet",
            "headers": {"pairwise_sub": "X-Auth-Subject", "name": "X-Auth-Name"},
            "assertion": {"audience": "helpdesk-app"},
        },
        {
            "name": "norway-only",
            "match": {"path_prefix": "/no/"},
            "upstream": upstreams["portal"].url,
            "require": {"country": ["NO"]},
        },
        {
            "name": "partner",
            "match": {"path_prefix": "/partner/"},
            "upstream": upstreams["portal"].url,
            "providers": ["dev2"],
            "headers": {"name": "X-Auth-Name"},
        },
    ]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env() -> AsyncIterator[Env]:
    idp_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    public_url = f"http://127.0.0.1:{gateway_port}"
    secret = secrets.token_urlsafe(24)
    names = ("portal", "hr", "wiki", "helpdesk")
    upstreams = {name: EchoUpstream() for name in names}
    for echo in upstreams.values():
        await echo.__aenter__()
    idp = create_devidp_app(
        issuer=issuer,
        clients=[
            DevClient(
                client_id=CLIENT_ID,
                auth_method="client_secret_basic",
                client_secret=secret,
                # Two provider entries at one IdP: the same person through two providers.
                redirect_uris=(f"{public_url}/_auth/callback/dev", f"{public_url}/_auth/callback/dev2"),
                post_logout_redirect_uris=(f"{public_url}/_auth/logged-out",),
            )
        ],
    )
    runner = web.AppRunner(idp, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", idp_port).start()
    provider = {
        "flow": "redirect",
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "scopes": ["openid", "profile"],
        "claims": {"ssn": "ssn", "name": "name", "country": "country"},
    }
    config = {
        "listen": f"127.0.0.1:{gateway_port}",
        "public_url": public_url,
        "providers": [{"name": "dev", **provider}, {"name": "dev2", **provider}],
        "default_provider": "dev",
        "session": {"secret": secrets.token_urlsafe(32)},
        "pairwise": {"secret": secrets.token_urlsafe(32)},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "rate_limits": {"login_per_client": "off", "poll_start_per_client": "off", "ciba_per_person": "off"},
        "routes": routes(upstreams),
    }
    try:
        async with run_gateway(config) as gateway:
            yield Env(gateway=gateway, upstreams=upstreams, public_host=f"127.0.0.1:{gateway_port}")
    finally:
        await runner.cleanup()
        for echo in upstreams.values():
            await echo.__aexit__(None, None, None)


async def logged_in(env: Env, *, provider: str = "dev", person: str = "Åsa Öberg") -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    url = f"{env.url}/_auth/login?provider={provider}&rd=/portal/home"
    final = await browser_login(http, url, person=person)
    assert final.status == 200 and final.url.path == "/portal/home", await final.text()
    return http


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def asa(env: Env) -> AsyncIterator[aiohttp.ClientSession]:
    http = await logged_in(env)
    yield http
    await http.close()


async def get(
    http: aiohttp.ClientSession, env: Env, host: str, path: str, headers: list[tuple[str, str]] = ()  # type: ignore[assignment]
) -> aiohttp.ClientResponse:
    sent = [("Host", host), ("Accept", "application/json"), *headers]
    async with http.get(f"{env.url}{path}", headers=sent, allow_redirects=False) as response:
        await response.read()
        return response


async def assertion_claims(env: Env, token: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{env.url}/_auth/jwks.json") as resp:
        keys = jws.parse_jwks(await resp.json())
    return jws.verify(token, keys, algorithms={"ES256"})


def released(seen_headers: Any) -> set[str]:
    return {name for name in RELEASED_NAMES if name in seen_headers}


async def test_each_application_receives_exactly_what_its_route_lists(env: Env, asa: aiohttp.ClientSession) -> None:
    hr = await get(asa, env, "hr.test", "/payslips?month=11")
    assert hr.status == 200
    seen = env.upstreams["hr"].requests[-1]
    assert seen.path == "/payslips" and seen.query_string == "month=11"
    assert released(seen.headers) == {"X-Auth-Ssn", "X-Auth-Name", "X-Auth-Assertion"}
    assert seen.headers["X-Auth-Ssn"] == ASA_SSN and decode_header_value(seen.headers["X-Auth-Name"]) == "Åsa Öberg"
    assert seen.headers["X-Forwarded-Host"] == "hr.test"
    claims = await assertion_claims(env, seen.headers["X-Auth-Assertion"])
    assert claims["aud"] == "hr" and claims["ssn"] == ASA_SSN and claims["sub"].startswith("dev-")
    # The listed claims, and how the person logged in (always: acr, amr, auth_time; level with acr_levels).
    assert set(claims) == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "ssn", "name", "acr", "amr", "auth_time"}
    assert claims["amr"] == ["dev"] and isinstance(claims["auth_time"], int)

    wiki = await get(asa, env, "intranet.test", "/page/7")
    assert wiki.status == 200
    seen = env.upstreams["wiki"].requests[-1]
    assert released(seen.headers) == {"X-Auth-Subject", "X-Auth-Name", "X-Auth-Assertion"}
    subject = seen.headers["X-Auth-Subject"]
    assert len(subject) == 52 and subject.isascii() and subject.isalnum()
    claims = await assertion_claims(env, seen.headers["X-Auth-Assertion"])
    # The national ID reaches the wiki by no name: not as a header, not in its assertion.
    assert claims["aud"] == "wiki" and claims["sub"] == subject == claims["pairwise_sub"]
    assert ASA_SSN not in str(claims) and ASA_SSN not in str(dict(seen.headers))
    assert set(claims) == {
        "iss", "aud", "sub", "iat", "nbf", "exp", "jti", "name", "pairwise_sub", "acr", "amr", "auth_time"
    }

    helpdesk = await get(asa, env, "intranet.test:8443", "/helpdesk/tickets/7")
    assert helpdesk.status == 200
    seen = env.upstreams["helpdesk"].requests[-1]
    assert seen.path == "/tickets/7"  # strip_prefix
    assert seen.headers["X-Auth-Subject"] == subject  # the same sector: the same pseudonym
    claims = await assertion_claims(env, seen.headers["X-Auth-Assertion"])
    assert claims["aud"] == "helpdesk-app"

    portal = await get(asa, env, env.public_host, "/portal/x")
    assert portal.status == 200
    seen = env.upstreams["portal"].requests[-1]
    assert released(seen.headers) == {"X-Auth-Subject", "X-Auth-Assertion"}
    assert seen.headers["X-Auth-Subject"] != subject  # another sector: another pseudonym


@pytest.mark.parametrize(("host", "path", "upstream"), [
    ("hr.test", "/x", "hr"), ("intranet.test", "/x", "wiki"), ("intranet.test", "/helpdesk/x", "helpdesk"),
    ("127.0.0.1", "/portal/x", "portal"),
])
async def test_a_client_sent_identity_header_never_arrives_on_any_route(
    env: Env, asa: aiohttp.ClientSession, host: str, path: str, upstream: str
) -> None:
    response = await get(asa, env, host, path, SPOOFS)
    assert response.status == 200
    seen = env.upstreams[upstream].requests[-1]
    for name, forged in SPOOFS:
        assert forged not in seen.headers.getall(name, []), name
    assert "X_Auth_Ssn" not in seen.headers and "Mallory" not in str(dict(seen.headers))
    for name in RELEASED_NAMES:
        assert len(seen.headers.getall(name, [])) <= 1, name


async def test_a_public_path_of_a_route_needs_no_session(env: Env) -> None:
    async with aiohttp.ClientSession() as anonymous:
        response = await get(anonymous, env, "intranet.test", "/static/app.css", SPOOFS)
        assert response.status == 200
        seen = env.upstreams["wiki"].requests[-1]
        assert seen.path == "/static/app.css" and released(seen.headers) == set()
        # The same path on another host is that host's route's, and not public there.
        before = env.total_requests()
        response = await get(anonymous, env, "hr.test", "/static/app.css")
        assert response.status == 401 and env.total_requests() == before


@pytest.mark.parametrize(("host", "path"), [
    ("other.test", "/x"), ("127.0.0.1", "/"), ("127.0.0.1", "/portalx"), ("hr.test.evil", "/"), ("test", "/"),
])
async def test_a_request_no_route_matches_is_404_and_reaches_no_upstream(
    env: Env, asa: aiohttp.ClientSession, host: str, path: str
) -> None:
    before = env.total_requests()
    response = await get(asa, env, host, path)
    assert response.status == 404
    assert env.total_requests() == before


@pytest.mark.parametrize("host", ["hr.test/x", "hr.test:port", "hr test", "[::1"])
async def test_a_malformed_host_is_refused_not_routed(env: Env, asa: aiohttp.ClientSession, host: str) -> None:
    before = env.total_requests()
    response = await get(asa, env, host, "/x")
    assert response.status == 400
    assert env.total_requests() == before


async def test_a_route_requirement_refuses_with_403_and_forwards_nothing(env: Env, asa: aiohttp.ClientSession) -> None:
    before = env.total_requests()
    response = await get(asa, env, env.public_host, "/no/page")
    assert response.status == 403 and env.total_requests() == before


async def test_the_pseudonym_is_stable_across_logins_and_providers(env: Env, asa: aiohttp.ClientSession) -> None:
    await get(asa, env, "intranet.test", "/first")
    first = env.upstreams["wiki"].requests[-1].headers["X-Auth-Subject"]
    for provider in ("dev", "dev2"):
        again = await logged_in(env, provider=provider)
        try:
            await get(again, env, "intranet.test", "/again")
            seen = env.upstreams["wiki"].requests[-1]
            assert seen.headers["X-Auth-Subject"] == first, provider
        finally:
            await again.close()
    other = await logged_in(env, person="Sven Svensson")
    try:
        await get(other, env, "intranet.test", "/other")
        assert env.upstreams["wiki"].requests[-1].headers["X-Auth-Subject"] != first
    finally:
        await other.close()


async def test_a_route_accepts_sessions_of_its_providers_only(env: Env, asa: aiohttp.ClientSession) -> None:
    before = env.total_requests()
    api = await get(asa, env, env.public_host, "/partner/data")
    assert api.status == 401 and env.total_requests() == before
    async with asa.get(
        f"{env.url}/partner/data", headers={"Accept": "text/html"}, allow_redirects=False
    ) as navigation:
        assert navigation.status == 302
        login = navigation.headers["Location"]
    assert login.startswith("/_auth/login?") and parse_qs(urlsplit(login).query)["rd"] == ["/partner/data"]
    # The login for that page goes to the one provider the route accepts, and refuses another.
    async with aiohttp.ClientSession() as fresh:
        async with fresh.get(f"{env.url}{login}", allow_redirects=False) as start:
            assert start.status == 302 and "/_auth/callback/dev2" in start.headers["Location"].replace("%2F", "/")
        async with fresh.get(f"{env.url}{login}&provider=dev", allow_redirects=False) as refused:
            assert refused.status == 400
    partner = await logged_in(env, provider="dev2")
    try:
        response = await get(partner, env, env.public_host, "/partner/data")
        assert response.status == 200
        assert released(env.upstreams["portal"].requests[-1].headers) == {"X-Auth-Name", "X-Auth-Assertion"}
    finally:
        await partner.close()


async def test_per_route_metrics(env: Env, asa: aiohttp.ClientSession) -> None:
    await get(asa, env, "hr.test", "/metrics-check")
    await get(asa, env, env.public_host, "/no/x")
    assert env.gateway.metrics_url is not None
    async with aiohttp.ClientSession() as http, http.get(env.gateway.metrics_url) as resp:
        text = await resp.text()
    assert 'gateway_route_requests_total{outcome="proxied",route="hr"}' in text
    assert 'gateway_route_refusals_total{reason="forbidden",route="norway-only"}' in text
    assert 'gateway_route_request_duration_seconds_count{route="hr"}' in text
    assert 'route="other' not in text  # unmatched hosts never become label values


async def test_userinfo_never_shows_what_routes_withhold(env: Env, asa: aiohttp.ClientSession) -> None:
    async with asa.get(f"{env.url}/_auth/userinfo") as resp:
        assert resp.status == 200
        shown = await resp.json()
    assert set(shown) == {"name", "idp", "acr", "auth_time"} and shown["name"] == "Åsa Öberg"
    assert ASA_SSN not in str(shown)
