"""deploy/nginx/auth_request.conf, as shipped, with real nginx: nginx in front of the recording echo upstream,
the real gateway behind it (public_url = the nginx URL, trusted_proxies = [127.0.0.1/32]) and the
development IdP. The browser only ever talks to nginx. attacks.md C (T09, T10) through nginx, E (T20,
T21), B (T06-T08) and J (T45, config side).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from gateway.assertion import ROUTING_HEADERS
from tests.forward_auth.support import (
    ASA,
    IDENTITY_HEADERS,
    SITE_TEMPLATE,
    NginxStack,
    login_query,
    protected_in,
    raw_get,
    raw_request,
    running_nginx,
    running_nginx_stack,
    verify_assertion,
)
from tests.support.ports import free_port
from tests.support.stack import browser_login

pytestmark = pytest.mark.asyncio(loop_scope="module")

HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
JSON = "application/json"
SPOOF_SSN = "190001019999"


def _rules(config: dict[str, Any]) -> None:
    config["rules"] = [
        {"path_prefix": "/admin/", "require": {"country": ["NO"]}},
        {"host": "127.0.0.1", "path_prefix": "/payroll/", "require": {"country": ["NO"]}},
    ]


@dataclass
class Env:
    ns: NginxStack
    session: str  # Åsa's gw_session, obtained through nginx

    @property
    def url(self) -> str:
        return self.ns.url

    @property
    def host(self) -> str:
        return urlsplit(self.ns.url).netloc

    @property
    def requests(self) -> list[Any]:
        return self.ns.stack.echo.requests


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_env() -> AsyncIterator[Env]:
    async with running_nginx_stack(_rules) as ns:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            final = await browser_login(http, f"{ns.url}/private/start")
            assert final.status == 200, await final.text()
            session = next(c.value for c in http.cookie_jar if c.key == "gw_session")
        yield Env(ns=ns, session=session)


@pytest.fixture
def env(shared_env: Env) -> Env:
    shared_env.requests.clear()
    return shared_env


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


def assert_one_identity(headers: Any) -> None:
    """Exactly one instance of every protected name (any case, `_` for `-`), each the gateway's value."""
    seen = protected_in(headers)
    assert sorted(k.lower() for k, _ in seen) == sorted(h.lower() for h in IDENTITY_HEADERS), seen
    values = {k.lower(): v for k, v in seen}
    assert values["x-auth-ssn"] == ASA["ssn"]
    assert values["x-auth-name"] == ASA["name"]
    assert values["x-auth-country"] == ASA["country"]
    assert values["x-auth-assertion"].count(".") == 2


# ---------------------------------------------------------------- the login, end to end


async def test_browser_login_through_nginx_delivers_one_verified_identity(env: Env) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(f"{env.url}/private/page?x=1&y=%C3%A5", headers={"Accept": HTML},
                               allow_redirects=False) as first:
            assert first.status == 302
            assert first.headers["Location"] == f"{env.url}/_auth/login?rd=" + quote("/private/page?x=1&y=%C3%A5",
                                                                                     safe="")
            assert first.headers.get("Cache-Control") == "no-store"
            assert protected_in(first.headers) == []
        async with browser.get(first.headers["Location"], allow_redirects=False) as start:
            assert start.status == 302
            assert login_query(start.headers["Location"])["redirect_uri"] == [f"{env.url}/_auth/callback/dev"]
        assert env.requests == []
        final = await browser_login(browser, f"{env.url}/private/page?x=1&y=%C3%A5")
        assert final.status == 200, await final.text()
        assert str(final.url) == f"{env.url}/private/page?x=1&y=%C3%A5"
        seen = env.requests[-1]
        assert seen.path == "/private/page" and seen.query_string == "x=1&y=å"  # as aiohttp decodes it
        assert_one_identity(seen.headers)
        claims = await verify_assertion(browser, f"{env.url}/_auth/jwks.json", seen.headers["X-Auth-Assertion"])
        assert claims["iss"] == env.url and claims["aud"] == "upstream"
        assert claims["ssn"] == ASA["ssn"] and claims["name"] == "Åsa Öberg" and claims["country"] == "SE"
        assert "gw_session" not in seen.headers.get("Cookie", "")
        # HEAD is judged like GET.
        async with browser.head(f"{env.url}/private/page") as head:
            assert head.status == 200
        assert env.requests[-1].method == "HEAD"
        assert_one_identity(env.requests[-1].headers)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("accept", [JSON, HTML])
async def test_client_without_session_is_refused_and_nothing_is_forwarded(
    env: Env, http: aiohttp.ClientSession, method: str, accept: str
) -> None:
    async with http.request(method, f"{env.url}/private/x?y=1", headers={"Accept": accept},
                            data=b"a=1" if method in ("POST", "PUT") else None, allow_redirects=False) as resp:
        login = f"{env.url}/_auth/login?rd=%2Fprivate%2Fx%3Fy%3D1"
        if method in ("GET", "HEAD") and accept == HTML:
            assert resp.status == 302 and resp.headers["Location"] == login
        else:
            assert resp.status == 401 and "Location" not in resp.headers
            assert resp.headers["X-Auth-Login-Url"] == login
            if method != "HEAD":
                assert await resp.json() == {"error": "unauthenticated"}
        assert resp.headers.get("Cache-Control") == "no-store"
        assert protected_in(resp.headers) == []
    assert env.requests == []


async def test_request_bodies_pass_after_the_check(env: Env, http: aiohttp.ClientSession) -> None:
    body = b"x" * 300_000
    async with http.post(f"{env.url}/private/upload?a=1", data=body,
                         headers={"Cookie": f"gw_session={env.session}", "Content-Type": "application/octet-stream"}
                         ) as resp:
        assert resp.status == 200
    seen = env.requests[-1]
    assert seen.method == "POST" and seen.body == body
    assert_one_identity(seen.headers)
    # The gateway's own endpoints take small bodies only (attacks.md T45).
    async with http.post(f"{env.url}/_auth/callback/dev", data=b"x" * 100_000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 413


# ---------------------------------------------------------------- identity-header spoofing (T09, T10)

SPOOFS: list[list[tuple[str, str]]] = [
    [("X-Auth-Ssn", SPOOF_SSN)],
    [("x-auth-ssn", SPOOF_SSN)],
    [("X-AUTH-SSN", SPOOF_SSN)],
    [("x_auth_ssn", SPOOF_SSN)],
    [("X_Auth_Ssn", SPOOF_SSN)],
    [("X-Auth_Ssn", SPOOF_SSN)],
    [("X-Auth-Ssn ", SPOOF_SSN)],  # space before the colon
    [("X-Auth-Ssn", SPOOF_SSN), ("X-Auth-Ssn", "200001019999")],
    [("X-Auth-Ssn", SPOOF_SSN), ("x_auth_ssn", "200001019999"), ("X-AUTH-SSN", "1")],
    [("X-Auth-Name", "Admin"), ("X-Auth-Country", "NO"), ("X-Auth-Assertion", "eyJhbGciOiJub25lIn0.e30.")],
    [("X_Auth_Name", "Admin"), ("x_auth_country", "NO"), ("X_AUTH_ASSERTION", "e30.e30.")],
]


def _spoof_id(spoof: list[tuple[str, str]]) -> str:
    return "+".join(k for k, _ in spoof)


@pytest.mark.parametrize("spoof", SPOOFS, ids=[_spoof_id(s) for s in SPOOFS])
async def test_spoofed_identity_headers_never_arrive(env: Env, spoof: list[tuple[str, str]]) -> None:
    # nginx refuses a header name with whitespace before the colon outright (400); every other spelling is
    # either dropped (a name with "_") or replaced by nginx's own value (proxy_set_header, any case).
    bad_syntax = any(name != name.strip() for name, _ in spoof)
    accept = [("Accept", JSON)]
    port = env.ns.nginx.port
    # Without a session: refused, nothing forwarded.
    refused = await raw_request(port, raw_get("/private/x", accept + spoof, host=env.host))
    assert refused.status == (400 if bad_syntax else 401), refused.data[:200]
    assert env.requests == []
    # Without a session on a public path: forwarded, with no identity at all.
    public = await raw_request(port, raw_get("/public/x", accept + spoof, host=env.host))
    assert public.status == (400 if bad_syntax else 200)
    if not bad_syntax:
        assert len(env.requests) == 1 and protected_in(env.requests[-1].headers) == []
    # With a session: exactly the gateway's identity, once.
    cookie = [("Cookie", f"gw_session={env.session}")]
    answer = await raw_request(port, raw_get("/private/x", accept + cookie + spoof, host=env.host))
    assert answer.status == (400 if bad_syntax else 200)
    if not bad_syntax:
        assert len(env.requests) == 2
        assert_one_identity(env.requests[-1].headers)
    for recorded in env.requests:
        assert SPOOF_SSN not in str(list(recorded.headers.items()))
        assert "Admin" not in str(list(recorded.headers.items()))


async def test_underscore_spoofs_are_dropped_not_refused(env: Env) -> None:
    """nginx with `underscores_in_headers off` drops them silently: the request still works."""
    cookie = [("Cookie", f"gw_session={env.session}"), ("X_Auth_Ssn", SPOOF_SSN), ("x_auth_assertion", "a.b.c")]
    answer = await raw_request(env.ns.nginx.port, raw_get("/private/x", cookie, host=env.host))
    assert answer.status == 200
    assert_one_identity(env.requests[-1].headers)


# ---------------------------------------------------------------- forwarded-header trust (T06-T08)

ROUTING_SPOOF = [
    ("X-Forwarded-For", "1.2.3.4, 10.0.0.1"),
    ("X-Real-IP", "1.2.3.4"),
    ("Forwarded", "for=1.2.3.4;host=evil.example;proto=https"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Port", "8443"),
    ("X-Forwarded-Prefix", "//evil.example"),
    ("X-Forwarded-Uri", "/public/x"),
    ("X-Forwarded-Method", "GET"),
    ("X-Original-URL", "http://evil.example/public/x"),
    ("X-Original-URI", "/public/x"),
    ("X-Original-Method", "GET"),
    ("X-Rewrite-URL", "/public/x"),
    ("X-Client-IP", "1.2.3.4"),
    ("True-Client-IP", "1.2.3.4"),
    ("CF-Connecting-IP", "1.2.3.4"),
    ("X-HTTP-Method-Override", "DELETE"),
]


async def test_t07_t08_routing_headers_from_the_client_are_written_or_dropped(env: Env) -> None:
    # Without a session they cannot turn a private path into a public one (T07).
    refused = await raw_request(env.ns.nginx.port, raw_get("/private/x", [("Accept", JSON), *ROUTING_SPOOF],
                                                           host=env.host))
    assert refused.status == 401
    assert env.requests == []
    # With a session the upstream hears nginx's values only (T08).
    headers = [("Cookie", f"gw_session={env.session}"), *ROUTING_SPOOF]
    answer = await raw_request(env.ns.nginx.port, raw_get("/private/x", headers, host=env.host))
    assert answer.status == 200
    seen = env.requests[-1].headers
    assert seen.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.getall("X-Real-IP") == ["127.0.0.1"]
    assert seen.getall("X-Forwarded-Host") == ["127.0.0.1"]
    assert seen.getall("X-Forwarded-Proto") == ["http"]
    assert seen.getall("X-Forwarded-Port") == [str(env.ns.nginx.port)]
    assert seen.getall("Host") == ["127.0.0.1"]
    written = {"x-forwarded-for", "x-real-ip", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port"}
    for name in ROUTING_HEADERS - written:
        assert name not in seen, name
    assert "evil" not in str(list(seen.items())) and "1.2.3.4" not in str(list(seen.items()))
    assert_one_identity(seen)


async def test_t06_host_spoofing_through_nginx(env: Env, http: aiohttp.ClientSession) -> None:
    # A Host this server is not for: refused by nginx.
    foreign = await raw_request(env.ns.nginx.port, raw_get("/private/x", [("Accept", HTML)], host="evil.example"))
    assert foreign.status == 421 and "Location" not in foreign.headers
    # X-Forwarded-Host & co. from the client: the login and its redirect_uri stay on the configured origin.
    spoof = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example",
             "X-Original-URL": "https://evil.example/x", "Accept": HTML}
    async with http.get(f"{env.url}/private/x", headers=spoof, allow_redirects=False) as first:
        assert first.status == 302
        assert first.headers["Location"] == f"{env.url}/_auth/login?rd=%2Fprivate%2Fx"
    async with http.get(first.headers["Location"], headers=spoof, allow_redirects=False) as start:
        assert start.status == 302
        location = start.headers["Location"]
    assert login_query(location)["redirect_uri"] == [f"{env.url}/_auth/callback/dev"]
    assert "evil" not in location
    assert env.requests == []


async def test_t06_host_with_a_trailing_dot_is_the_same_host(env: Env) -> None:
    """`127.0.0.1.` reaches this server (nginx drops the dot for server_name); the config drops it from
    X-Original-URL too, so the login return target and the host rules see the real host."""
    host = f"127.0.0.1.:{env.ns.nginx.port}"
    first = await raw_request(env.ns.nginx.port, raw_get("/private/x?a=1", [("Accept", HTML)], host=host))
    assert first.status == 302
    assert first.headers["Location"] == f"{env.url}/_auth/login?rd=%2Fprivate%2Fx%3Fa%3D1"
    cookie = [("Cookie", f"gw_session={env.session}"), ("Accept", HTML)]
    payroll = await raw_request(env.ns.nginx.port, raw_get("/payroll/x", cookie, host=host))
    assert payroll.status == 403
    assert env.requests == []


# ---------------------------------------------------------------- rules (403 stays 403)


@pytest.mark.parametrize("target", ["/admin/x", "/admin", "/x/../admin/y", "/%61dmin/y", "//admin/y", "/payroll/z"])
async def test_rules_refuse_with_403_and_nothing_is_forwarded(env: Env, target: str) -> None:
    headers = [("Cookie", f"gw_session={env.session}"), ("Accept", HTML)]
    answer = await raw_request(env.ns.nginx.port, raw_get(target, headers, host=env.host))
    assert answer.status == 403, answer.data[:300]
    assert "Location" not in answer.headers and protected_in(answer.headers) == []
    assert env.requests == []


@pytest.mark.parametrize("target", ["/x", "/administrator", "/adminx/y", "/x/admin/y"])
async def test_rules_allow_other_paths(env: Env, target: str) -> None:
    answer = await raw_request(env.ns.nginx.port,
                               raw_get(target, [("Cookie", f"gw_session={env.session}")], host=env.host))
    assert answer.status == 200
    assert_one_identity(env.requests[-1].headers)


# ---------------------------------------------------------------- the upstream's Cookie header


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        ("theme=dark; gw_session={s}; lang=sv", "theme=dark; lang=sv"),
        ("gw_session={s}; theme=dark", "theme=dark"),
        ("theme=dark; gw_session={s}", "theme=dark"),
        ("gw_session={s}", None),
        ("gw_session_login=abc; theme=dark; gw_session={s}; gw_session_tx=x", "theme=dark"),
        ("my_gw_session=1; gw_session={s}; gw_sessionx=2", "my_gw_session=1; gw_sessionx=2"),
    ],
)
async def test_gateway_cookies_never_reach_the_upstream(
    env: Env, http: aiohttp.ClientSession, cookie: str, expected: str | None
) -> None:
    async with http.get(f"{env.url}/private/x", headers={"Cookie": cookie.format(s=env.session)}) as resp:
        assert resp.status == 200
    seen = env.requests[-1].headers
    assert seen.getall("Cookie", []) == ([] if expected is None else [expected])
    assert_one_identity(seen)


# ---------------------------------------------------------------- malformed input (T20)


LOGIN = 0  # 401 for an API client, 302 to the login for a browser


def _t20_cases(session: str) -> list[tuple[str, list[tuple[str, str]], int]]:
    """(target, headers, expected status) sent by a client to nginx without a valid session."""
    big = "a=" + "x" * 20480
    return [
        # The client's X-Original-*/X-Forwarded-* never reach the gateway: the real request is judged.
        ("/private/x", [("X-Original-URL", "http://[::1")], LOGIN),
        ("/private/x", [("X-Original-URL", "http://[::1"), ("X-Original-Method", "GET")], LOGIN),
        ("/private/x", [("X-Forwarded-Uri", "/%zz"), ("X-Forwarded-Method", "GET"),
                        ("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", "127.0.0.1")], LOGIN),
        ("/%zz", [], 400),  # nginx refuses a bad escape in the request target itself
        ("/%zz", [("Cookie", f"gw_session={session}")], 400),
        ("/private/x", [("Cookie", "gw_session=%%%")], LOGIN),
        ("/private/x", [("Cookie", "gw_session=")], LOGIN),
        ("/private/x", [("Cookie", f"gw_session={session[: len(session) // 2]}")], LOGIN),
        ("/private/x", [("Cookie", f"gw_session={session[:-3]}")], LOGIN),
        ("/private/x", [("Cookie", f"gw_session={session}x")], LOGIN),
        ("/private/x", [("Cookie", big)], 400),  # 20 KiB of cookie: over large_client_header_buffers
        ("/private/x", [("Cookie", f"gw_session={session}; {big}")], 400),
        ("/private/x", [("Cookie", f"gw_session={session}"), ("X-Pad", "y" * 9000)], 400),
        ("/private/" + "a" * 9000, [("Cookie", f"gw_session={session}")], 414),
    ]


@pytest.mark.parametrize("case", range(len(_t20_cases("s"))))
@pytest.mark.parametrize("accept", [JSON, HTML])
async def test_t20_malformed_requests_through_nginx_never_pass(env: Env, case: int, accept: str) -> None:
    target, headers, expected = _t20_cases(env.session)[case]
    answer = await raw_request(env.ns.nginx.port, raw_get(target, [("Accept", accept), *headers], host=env.host))
    if expected == LOGIN:
        assert answer.status == (302 if accept == HTML else 401), answer.data[:300]
        if accept == HTML:
            assert answer.headers["Location"] == f"{env.url}/_auth/login?rd=%2Fprivate%2Fx"
    else:
        assert answer.status == expected, answer.data[:300]
    assert protected_in(answer.headers) == []
    assert env.requests == []


async def test_t20_gateway_unreachable_is_an_error_not_a_pass(http: aiohttp.ClientSession) -> None:
    port = free_port()
    async with running_nginx(port=port, gateway=f"127.0.0.1:{free_port()}", upstream=f"127.0.0.1:{free_port()}") as ng:
        for accept in (JSON, HTML):
            async with http.get(f"{ng.url}/private/x", headers={"Accept": accept}, allow_redirects=False) as resp:
                assert resp.status == 500
                assert "Location" not in resp.headers and protected_in(resp.headers) == []


# ---------------------------------------------------------------- the verify endpoint itself (T21)


VERIFY_VARIANTS = [
    "/_auth/verify",
    "/_auth/verify/",
    "/_auth/verify/private/x",
    "/_auth/verify?x=1",
    "/_auth/verifyx",
    "/_auth//verify",
    "/_auth/./verify/x",
    "/_auth/x/../verify/private/x",
    "/_auth/%76erify",
    "/_auth/%76erify/private/x",
    "/_auth/verify%2Fprivate",
    "/_auth/Verify/x",
    "/%5Fauth/verify/x",
    "//_auth/verify/x",
]


@pytest.mark.parametrize("target", VERIFY_VARIANTS)
async def test_t21_clients_cannot_reach_verify_through_nginx(env: Env, target: str) -> None:
    headers = [("Cookie", f"gw_session={env.session}"), ("Accept", JSON),
               ("X-Original-URL", f"http://{env.host}/x"), ("X-Original-Method", "GET")]
    answer = await raw_request(env.ns.nginx.port, raw_get(target, headers, host=env.host))
    assert answer.status in (400, 404), (target, answer.data[:300])
    assert protected_in(answer.headers) == [], target
    assert b"199003152387" not in answer.data


async def test_t21_verify_answers_only_trusted_peers(env: Env) -> None:
    gateway = env.ns.gateway_url
    headers = {"Cookie": f"gw_session={env.session}", "X-Original-URL": f"http://{env.host}/x",
               "X-Original-Method": "GET", "X-Auth-Ssn": SPOOF_SSN}
    # 127.0.0.2 is loopback but not in trusted_proxies (127.0.0.1/32).
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as outsider,
        outsider.get(f"{gateway}/_auth/verify", headers=headers) as resp,
    ):
        assert resp.status == 403
        assert resp.headers.get("Cache-Control") == "no-store"
        assert protected_in(resp.headers) == [] and "X-Auth-Login-Url" not in resp.headers
    # The trusted peer (nginx's address) gets the answer; without a session its 401 carries no identity.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as proxy:
        async with proxy.get(f"{gateway}/_auth/verify", headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers.getall("X-Auth-Ssn") == [ASA["ssn"]]
        no_session = {k: v for k, v in headers.items() if k != "Cookie"}
        async with proxy.get(f"{gateway}/_auth/verify", headers=no_session) as resp:
            assert resp.status == 401
            assert protected_in(resp.headers) == []


async def test_t20_direct_malformed_verify_calls_from_the_trusted_peer(env: Env, http: aiohttp.ClientSession) -> None:
    """What the gateway does when the proxy itself sends nonsense (a broken or hand-written config)."""
    gateway, own = env.ns.gateway_url, env.host
    cookie = {"Cookie": f"gw_session={env.session}"}
    cases: list[dict[str, str]] = [
        {},
        {"X-Original-URL": "http://[::1", "X-Original-Method": "GET"},
        {"X-Original-URL": f"http://{own}/%zz", "X-Original-Method": "GET"},
        {"X-Original-URL": f"http://{own}/x"},
        {"X-Forwarded-Uri": "/%zz", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
         "X-Forwarded-Host": own},
    ]
    for headers in cases:
        for extra in ({}, cookie, {"Cookie": "gw_session=%%%"}, {"Cookie": "gw_session="}):
            async with http.get(f"{gateway}/_auth/verify", headers={**headers, **extra}) as resp:
                assert resp.status == 401, (headers, extra)
                assert protected_in(resp.headers) == []
    big = {"Cookie": f"gw_session={env.session}; pad=" + "x" * 20480,
           "X-Original-URL": f"http://{own}/x", "X-Original-Method": "GET"}
    async with http.get(f"{gateway}/_auth/verify", headers=big) as resp:
        assert resp.status in (400, 401, 431)
        assert protected_in(resp.headers) == []


# ---------------------------------------------------------------- sessions slide under forward-auth too


async def test_an_active_session_does_not_expire_at_the_idle_timeout() -> None:
    """session.idle_timeout is an *idle* timeout: the gateway's own proxy re-seals the cookie as the user
    works (Session.needs_refresh/touched). Behind nginx every request goes through /_auth/verify, so verify
    must refresh the session too (a Set-Cookie the config copies back with `auth_request_set
    $auth_set_cookie $upstream_http_set_cookie; add_header Set-Cookie ...`); otherwise an active user is
    logged out idle_timeout after the login (1h by default)."""

    def short_idle(config: dict[str, Any]) -> None:
        config["session"]["idle_timeout"] = "3s"

    async with running_nginx_stack(short_idle) as ns, aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as browser:
        final = await browser_login(browser, f"{ns.url}/private/start")
        assert final.status == 200
        statuses = []
        for _ in range(10):  # 4 s of activity, a request every 0.4 s: never idle for 3 s
            await asyncio.sleep(0.4)
            async with browser.get(f"{ns.url}/private/x", headers={"Accept": JSON}) as resp:
                statuses.append(resp.status)
        assert statuses == [200] * 10, statuses


# ---------------------------------------------------------------- the file itself (T45)


def _directive(text: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", text, flags=re.MULTILINE)


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)?", value.strip())
    assert match, value
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[match.group(2)]


async def test_t45_slow_client_limits_are_set() -> None:
    text = SITE_TEMPLATE.read_text(encoding="utf-8")
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        values = _directive(text, name)
        assert len(values) == 1 and _seconds(values[0]) <= 30, (name, values)
    assert _directive(text, "limit_conn"), "a connection cap per client"
    assert _directive(text, "underscores_in_headers") == ["off"]
    assert _directive(text, "ignore_invalid_headers") == ["on"]
    # Every identity header is written (or cleared) by nginx for the application.
    for header in IDENTITY_HEADERS:
        assert re.search(rf"^\s*proxy_set_header {header} \$auth_", text, flags=re.MULTILINE), header


async def test_t45_a_slow_header_does_not_block_others(env: Env, http: aiohttp.ClientSession) -> None:
    """A client dribbling its header holds a connection, not the server: a normal request still completes."""
    slow = [await asyncio.open_connection("127.0.0.1", env.ns.nginx.port) for _ in range(20)]
    try:
        for _, writer in slow:
            writer.write(b"GET /private/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ")
            await writer.drain()
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with http.get(URL(f"{env.url}/private/x"), headers={"Cookie": f"gw_session={env.session}"}) as resp:
            assert resp.status == 200
        assert loop.time() - started < 1.0
    finally:
        for _, writer in slow:
            writer.close()
