"""HTTP-level contract of /_auth/verify for the three proxy conventions it speaks, against the real gateway:
Traefik forwardAuth (X-Forwarded-Method/-Proto/-Host/-Uri), ingress-nginx / nginx auth_request
(X-Original-URL + X-Original-Method) and Envoy ext_authz (the original path after /_auth/verify, the
original method and Host). The test client is 127.0.0.1, which these stacks list in trusted_proxies, so
it plays the proxy. attacks.md E (T20, T21) and B (T07).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from multidict import CIMultiDict
from yarl import URL

from tests.forward_auth.support import (
    ASA,
    IDENTITY_HEADERS,
    KARI,
    login_query,
    manual_login,
    protected_in,
    verify_assertion,
)
from tests.support.stack import Stack, browser_login, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
JSON = "application/json"
MODES = ("traefik", "ingress", "envoy")


@dataclass
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: str


@dataclass
class Contract:
    stack: Stack
    asa: str  # session cookie values (cookie name gw_session)
    kari: str

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def own_host(self) -> str:
        return urlsplit(self.stack.url).netloc


def _contract_config(config: dict[str, Any]) -> None:
    config["trusted_proxies"] = ["127.0.0.1/32"]
    config["allowed_redirect_domains"] = ["app2.example.test"]
    config["rules"] = [
        {"path_prefix": "/admin/", "require": {"country": ["NO"]}},
        {"host": "admin.example.test", "path_prefix": "/", "require": {"country": ["NO"]}},
    ]


async def _session_cookie(stack: Stack, person: str) -> str:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        final = await browser_login(http, f"{stack.url}/private/start", person=person)
        assert final.status == 200, await final.text()
        return next(c.value for c in http.cookie_jar if c.key == "gw_session")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_contract() -> AsyncIterator[Contract]:
    async with running_stack(customize=_contract_config) as stack:
        yield Contract(stack=stack, asa=await _session_cookie(stack, "Åsa Öberg"),
                       kari=await _session_cookie(stack, "Kari Nordmann"))


@pytest.fixture
def contract(shared_contract: Contract) -> Contract:
    shared_contract.stack.echo.requests.clear()
    return shared_contract


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def ask(
    http: aiohttp.ClientSession,
    base: str,
    mode: str,
    *,
    method: str = "GET",
    host: str,
    target: str,
    scheme: str = "http",
    cookie: str | None = None,
    accept: str = JSON,
    extra: dict[str, str] | None = None,
    cookie_name: str = "gw_session",
) -> Answer:
    """One verify call as ``mode``'s proxy makes it for the client request ``method scheme://host target``."""
    headers: dict[str, str] = {"Accept": accept}
    verify_method, path = "GET", "/_auth/verify"
    if mode == "traefik":
        headers.update({"X-Forwarded-Method": method, "X-Forwarded-Proto": scheme, "X-Forwarded-Host": host,
                        "X-Forwarded-Uri": target})
    elif mode == "ingress":
        headers.update({"X-Original-URL": f"{scheme}://{host}{target}", "X-Original-Method": method})
    else:
        verify_method, path = method, "/_auth/verify" + target
        headers.update({"Host": host, "X-Forwarded-Proto": scheme})
    if cookie is not None:
        headers["Cookie"] = f"{cookie_name}={cookie}"
    headers.update(extra or {})
    async with http.request(verify_method, URL(base + path, encoded=True), headers=headers,
                            allow_redirects=False) as resp:
        return Answer(resp.status, CIMultiDict(resp.headers), await resp.text())


def login_url(public_url: str, rd: str) -> str:
    return f"{public_url}/_auth/login?rd=" + quote(rd, safe="")


def assert_no_identity(answer: Answer) -> None:
    assert protected_in(answer.headers) == [], answer.headers


def assert_identity(answer: Answer, person: dict[str, str]) -> None:
    assert answer.status == 200, answer
    assert answer.headers.get("Cache-Control") == "no-store"
    for header, key in zip(IDENTITY_HEADERS, ("ssn", "name", "country"), strict=False):
        assert answer.headers.getall(header) == [person[key]], header
    assert len(answer.headers.getall("X-Auth-Assertion")) == 1
    assert "Location" not in answer.headers and "X-Auth-Login-Url" not in answer.headers


# ---------------------------------------------------------------- no session


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "HEAD"])
async def test_api_call_without_session_is_401_with_the_login_url(
    contract: Contract, http: aiohttp.ClientSession, mode: str, method: str
) -> None:
    target = "/private/x?y=1&z=%C3%A5"
    answer = await ask(http, contract.url, mode, method=method, host=contract.own_host, target=target)
    assert answer.status == 401
    assert answer.headers["X-Auth-Login-Url"] == login_url(contract.url, target)
    assert answer.headers.get("Cache-Control") == "no-store"
    assert "Location" not in answer.headers
    assert_no_identity(answer)
    assert contract.stack.echo.requests == []


@pytest.mark.parametrize("mode", MODES)
async def test_browser_navigation_without_session(contract: Contract, http: aiohttp.ClientSession, mode: str) -> None:
    """Traefik cannot turn a 401 into a redirect, so the gateway answers its browsers with the 302 itself;
    nginx and Envoy get the 401 + X-Auth-Login-Url and redirect themselves."""
    answer = await ask(http, contract.url, mode, host=contract.own_host, target="/private/x?y=1", accept=HTML)
    expected = login_url(contract.url, "/private/x?y=1")
    if mode == "traefik":
        assert answer.status == 302
        assert answer.headers["Location"] == expected
    else:
        assert answer.status == 401
        assert answer.headers["X-Auth-Login-Url"] == expected
        assert "Location" not in answer.headers
    assert answer.headers.get("Cache-Control") == "no-store"
    assert_no_identity(answer)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_non_navigation_with_html_accept_is_never_redirected(
    contract: Contract, http: aiohttp.ClientSession, mode: str, method: str
) -> None:
    answer = await ask(http, contract.url, mode, method=method, host=contract.own_host, target="/form", accept=HTML)
    assert answer.status == 401 and "Location" not in answer.headers
    assert answer.headers["X-Auth-Login-Url"] == login_url(contract.url, "/form")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("host", "scheme", "rd"),
    [
        ("app2.example.test", "http", "http://app2.example.test/dash/x?q=1"),  # allow-listed: absolute
        ("evil.example.test", "http", "/"),  # not allow-listed
        ("app2.example.test.evil.test", "http", "/"),
        ("app2.example.test", "https", "/"),  # the gateway's own scheme only
        ("app2.example.test:8443", "http", "/"),  # the allow-listed port only (80 here)
    ],
)
async def test_return_target_of_a_foreign_host(
    contract: Contract, http: aiohttp.ClientSession, mode: str, host: str, scheme: str, rd: str
) -> None:
    answer = await ask(http, contract.url, mode, host=host, scheme=scheme, target="/dash/x?q=1")
    assert answer.status == 401
    assert answer.headers["X-Auth-Login-Url"] == login_url(contract.url, rd)
    assert login_query(answer.headers["X-Auth-Login-Url"])["rd"] == [rd]


@pytest.mark.parametrize("mode", MODES)
async def test_public_path_only_on_the_gateways_own_host(
    contract: Contract, http: aiohttp.ClientSession, mode: str
) -> None:
    own = await ask(http, contract.url, mode, host=contract.own_host, target="/public/a?b=1",
                    extra={"X-Auth-Ssn": "190001019999"})
    assert own.status == 200 and own.headers.get("Cache-Control") == "no-store"
    assert_no_identity(own)
    other = await ask(http, contract.url, mode, host="app2.example.test", target="/public/a")
    assert other.status == 401
    assert_no_identity(other)
    sneaky = await ask(http, contract.url, mode, host=contract.own_host, target="/private/../public/a")
    assert sneaky.status == 200  # the normalised path is what counts, and it is public
    escaping = await ask(http, contract.url, mode, host=contract.own_host, target="/public/../private/a")
    assert escaping.status == 401


# ---------------------------------------------------------------- with a session


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_valid_session_is_200_with_identity_and_assertion(
    contract: Contract, http: aiohttp.ClientSession, mode: str, method: str
) -> None:
    answer = await ask(http, contract.url, mode, method=method, host=contract.own_host, target="/some/path?x=1",
                       cookie=contract.asa, accept=HTML,
                       extra={"X-Auth-Ssn": "190001019999", "X-Auth-Country": "NO", "X-Auth-Assertion": "x.y.z"})
    assert_identity(answer, ASA)  # from the session, never echoed from the request (T21)
    claims = await verify_assertion(http, f"{contract.url}/_auth/jwks.json", answer.headers["X-Auth-Assertion"])
    assert claims["ssn"] == ASA["ssn"] and claims["name"] == "Åsa Öberg" and claims["country"] == "SE"
    assert claims["iss"] == contract.url and claims["aud"] == "upstream"
    assert contract.stack.echo.requests == []  # verify only judges; it never forwards


@pytest.mark.parametrize("mode", MODES)
async def test_rules_decide_on_the_normalised_path(contract: Contract, http: aiohttp.ClientSession, mode: str) -> None:
    host = contract.own_host
    for target in ("/admin/x", "/admin", "/admin/", "/x/../admin/y", "/%61dmin/y", "//admin//y", "/admin/./y"):
        answer = await ask(http, contract.url, mode, host=host, target=target, cookie=contract.asa, accept=HTML)
        assert answer.status == 403, (target, answer)  # a refusal is never a redirect to the login
        assert "Location" not in answer.headers and "X-Auth-Login-Url" not in answer.headers
        assert answer.headers.get("Cache-Control") == "no-store"
        assert_no_identity(answer)
    for target in ("/x", "/administrator", "/adminx/y", "/x/admin/y"):
        assert_identity(await ask(http, contract.url, mode, host=host, target=target, cookie=contract.asa), ASA)
    assert_identity(await ask(http, contract.url, mode, host=host, target="/admin/x", cookie=contract.kari), KARI)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("host", ["admin.example.test", "ADMIN.Example.Test", "admin.example.test:8443"])
async def test_host_rule_applies_to_every_spelling_of_the_host(
    contract: Contract, http: aiohttp.ClientSession, mode: str, host: str
) -> None:
    refused = await ask(http, contract.url, mode, host=host, target="/x", cookie=contract.asa)
    assert refused.status == 403
    assert_no_identity(refused)
    assert_identity(await ask(http, contract.url, mode, host=host, target="/x", cookie=contract.kari), KARI)


@pytest.mark.parametrize("mode", MODES)
async def test_host_rule_is_not_escaped_by_a_trailing_dot(
    contract: Contract, http: aiohttp.ClientSession, mode: str
) -> None:
    """`admin.example.test.` is the same host as `admin.example.test` (absolute FQDN; browsers, DNS and
    Traefik/Envoy route it to the same site), so the host rule must still apply. A 401 for the odd
    spelling would be fine too; a 200 with identity is a rule bypass."""
    for host in ("admin.example.test.", "admin.example.test.:8443"):
        answer = await ask(http, contract.url, mode, host=host, target="/x", cookie=contract.asa)
        assert answer.status in (401, 403), (host, answer.status)
        assert_no_identity(answer)


@pytest.mark.parametrize("mode", MODES)
async def test_login_return_target_is_the_request_target_as_sent(
    contract: Contract, http: aiohttp.ClientSession, mode: str
) -> None:
    """After the login the browser must land on the URL it asked for. The gateway's own proxy keeps the
    path's encoding (`/a%3Fb` stays one segment named `a?b`); the forward-auth login must do the same,
    not decode it into `/a?b` (a different resource: path /a, query b)."""
    target = "/docs/a%3Fb/c%20d?x=1"
    async with http.get(URL(contract.url + target, encoded=True), headers={"Accept": JSON}) as proxied:
        assert proxied.status == 401
        proxy_login = (await proxied.json())["login_url"]
    assert login_query(proxy_login)["rd"] == [target]
    answer = await ask(http, contract.url, mode, host=contract.own_host, target=target)
    assert answer.status == 401
    assert login_query(answer.headers["X-Auth-Login-Url"])["rd"] == [target]


# ---------------------------------------------------------------- malformed input (attacks.md T20, T07)


def _malformed(own: str) -> list[tuple[str, str, dict[str, str]]]:
    """(verify path, method, headers): every one must be refused whatever the session."""
    v = "/_auth/verify"
    ok_url = f"http://{own}/x"
    return [
        (v, "GET", {}),  # no X-Original-*, no X-Forwarded-*
        (v, "GET", {"X-Original-Method": "GET"}),
        (v, "GET", {"X-Original-URL": "http://[::1", "X-Original-Method": "GET"}),
        (v, "GET", {"X-Original-URL": f"http://{own}/%zz", "X-Original-Method": "GET"}),
        (v, "GET", {"X-Original-URL": ok_url}),  # no method
        (v, "GET", {"X-Original-URL": ok_url, "X-Original-Method": "get"}),
        (v, "GET", {"X-Original-URL": ok_url, "X-Original-Method": "GET /"}),
        (v, "GET", {"X-Original-URL": "/x", "X-Original-Method": "GET"}),  # not a full URL
        (v, "GET", {"X-Original-URL": f"ftp://{own}/x", "X-Original-Method": "GET"}),
        (v, "GET", {"X-Original-URL": f"http://user@{own}/x", "X-Original-Method": "GET"}),
        (v, "GET", {"X-Original-URL": f"http://{own}/x#/public/", "X-Original-Method": "GET"}),
        (v, "GET", {"X-Original-URL": f"http://{own}/public/..%2fx", "X-Original-Method": "GET"}),
        (v, "GET", {"X-Original-URL": f"http://{own}/" + "a" * 5000, "X-Original-Method": "GET"}),
        (v, "GET", {"X-Original-URL": "http:///x", "X-Original-Method": "GET"}),
        (v, "GET", {"X-Forwarded-Uri": "/%zz", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
                    "X-Forwarded-Host": own}),
        (v, "GET", {"X-Forwarded-Uri": "/x", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http"}),  # no host
        (v, "GET", {"X-Forwarded-Uri": "/x", "X-Forwarded-Method": "GET", "X-Forwarded-Host": own}),  # no proto
        (v, "GET", {"X-Forwarded-Uri": "/x", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "gopher",
                    "X-Forwarded-Host": own}),
        (v, "GET", {"X-Forwarded-Uri": "/x", "X-Forwarded-Proto": "http", "X-Forwarded-Host": own}),  # no method
        (v, "GET", {"X-Forwarded-Uri": "x", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
                    "X-Forwarded-Host": own}),
        (v, "GET", {"X-Forwarded-Uri": "/x", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
                    "X-Forwarded-Host": "evil.test/x"}),
        (v, "GET", {"X-Forwarded-Uri": "/x", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
                    "X-Forwarded-Host": "a..b"}),
        # Two conventions at once is no proxy we know (tinyauth PR #1089): refuse, never pick one.
        (v, "GET", {"X-Original-URL": f"http://{own}/public/x", "X-Original-Method": "GET",
                    "X-Forwarded-Uri": "/x", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
                    "X-Forwarded-Host": own}),
        (v + "/x", "GET", {"Host": own, "X-Forwarded-Proto": "ftp"}),
        (v + "/x", "GET", {"Host": "evil.test:99999x"}),
        (v + "/%zz", "GET", {"Host": own}),
    ]


@pytest.mark.parametrize("case", range(len(_malformed("h"))))
@pytest.mark.parametrize("with_session", [False, True])
async def test_t20_malformed_requests_are_401_never_2xx(
    contract: Contract, http: aiohttp.ClientSession, case: int, with_session: bool
) -> None:
    path, method, headers = _malformed(contract.own_host)[case]
    headers = {"Accept": JSON, **headers}
    if with_session:
        headers["Cookie"] = f"gw_session={contract.asa}"
    async with http.request(method, URL(contract.url + path, encoded=True), headers=headers,
                            allow_redirects=False) as resp:
        assert resp.status in (400, 401), (headers, resp.status)
        answer = Answer(resp.status, CIMultiDict(resp.headers), await resp.text())
    assert_no_identity(answer)


@pytest.mark.parametrize("header", ["X-Original-URL", "X-Original-Method", "X-Forwarded-Uri", "X-Forwarded-Host",
                                    "X-Forwarded-Method"])
async def test_t20_repeated_routing_header_is_refused(
    contract: Contract, http: aiohttp.ClientSession, header: str
) -> None:
    own = contract.own_host
    if header.startswith("X-Original"):
        base = {"X-Original-URL": f"http://{own}/x", "X-Original-Method": "GET"}
    else:
        base = {"X-Forwarded-Uri": "/x", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
                "X-Forwarded-Host": own}
    headers: CIMultiDict[str] = CIMultiDict(base)
    headers.add(header, {"X-Original-URL": f"http://{own}/public/x", "X-Forwarded-Uri": "/public/x",
                         "X-Forwarded-Host": "app2.example.test"}.get(header, "POST"))
    headers["Cookie"] = f"gw_session={contract.asa}"
    async with http.get(contract.url + "/_auth/verify", headers=headers) as resp:
        assert resp.status == 401
        assert "X-Auth-Ssn" not in resp.headers


@pytest.mark.parametrize(
    "injected",
    [
        {"X-Original-URL": "http://{own}/public/x", "X-Original-Method": "GET"},
        {"X-Forwarded-Uri": "/public/x", "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
         "X-Forwarded-Host": "{own}"},
    ],
)
@pytest.mark.parametrize("with_session", [False, True])
async def test_t07_envoy_path_with_another_conventions_headers_is_refused(
    contract: Contract, http: aiohttp.ClientSession, injected: dict[str, str], with_session: bool
) -> None:
    """Envoy puts the original path after /_auth/verify. If the verify request also carries X-Original-URL or
    X-Forwarded-Uri (a client header that Envoy's allowed_headers let through), that is two conventions at
    once: the gateway must refuse, as it already does for X-Original-URL + X-Forwarded-Uri, never judge the
    client-chosen URL instead of the path Envoy asked about (attacks.md T07; tinyauth PR #1089)."""
    own = contract.own_host
    headers = {"Host": own, "X-Forwarded-Proto": "http", "Accept": JSON,
               **{k: v.format(own=own) for k, v in injected.items()}}
    if with_session:
        headers["Cookie"] = f"gw_session={contract.asa}"
    async with http.get(contract.url + "/_auth/verify/admin/secret", headers=headers, allow_redirects=False) as resp:
        assert resp.status == 401, (
            f"verify judged the injected {next(iter(injected))} instead of refusing: {resp.status}"
        )


async def test_t20_bad_cookies_are_401(contract: Contract, http: aiohttp.ClientSession) -> None:
    own = contract.own_host
    for value in ("%%%", contract.asa[: len(contract.asa) // 2], contract.asa[:-2], "", contract.asa + "A",
                  "a" * 4000, contract.kari.replace(".", "x")):
        for mode in MODES:
            answer = await ask(http, contract.url, mode, host=own, target="/x", cookie=value)
            assert answer.status == 401, (mode, value[:20])
            assert_no_identity(answer)
    for mode in MODES:  # 20 KiB of cookie: refused by the HTTP parser (or 401), never a pass
        padded = contract.asa + "; pad=" + "x" * 20480
        answer = await ask(http, contract.url, mode, host=own, target="/x", cookie=padded)
        assert answer.status in (400, 401, 431)
        assert_no_identity(answer)


async def test_t21_untrusted_caller_gets_403_without_identity(contract: Contract) -> None:
    """A peer outside trusted_proxies (here 127.0.0.2: loopback, but not in 127.0.0.1/32) may not ask."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as other:
        for mode in MODES:
            answer = await ask(other, contract.url, mode, host=contract.own_host, target="/x", cookie=contract.asa,
                               extra={"X-Auth-Ssn": "190001019999"})
            assert answer.status == 403
            assert answer.headers.get("Cache-Control") == "no-store"
            assert "X-Auth-Login-Url" not in answer.headers
            assert_no_identity(answer)
        # ...while the gateway itself still serves that peer normally (the refusal is verify's own).
        async with other.get(contract.url + "/_auth/healthz") as health:
            assert health.status == 200


# ---------------------------------------------------------------- sibling-host SSO


SSO_PUBLIC = "https://login.example.test"


def _sso_config(config: dict[str, Any]) -> None:
    # https for a public_url that is only a name: the gateway listens on plain loopback HTTP (TLS ends in
    # front of it), and config only allows http:// public_urls for loopback hosts (config_reader.check_url).
    config["public_url"] = SSO_PUBLIC
    config["trusted_proxies"] = ["127.0.0.1/32"]
    config["session"]["cookie_domain"] = "example.test"
    config["allowed_redirect_domains"] = [".example.test"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sso() -> AsyncIterator[Stack]:
    async with running_stack(customize=_sso_config) as stack:
        yield stack


@pytest.mark.parametrize("mode", MODES)
async def test_sso_return_targets(sso: Stack, http: aiohttp.ClientSession, mode: str) -> None:
    cases = [
        ("app2.example.test", "https", "https://app2.example.test/dash?q=1"),
        ("deep.app3.example.test", "https", "https://deep.app3.example.test/dash?q=1"),
        ("login.example.test", "https", "/dash?q=1"),  # the gateway's own origin: a relative target
        ("app2.example.test", "http", "/"),  # not the gateway's scheme
        ("example.test.evil.test", "https", "/"),
        ("evilexample.test", "https", "/"),
        ("app2.example.test:444", "https", "/"),
    ]
    for host, scheme, rd in cases:
        answer = await ask(http, sso.url, mode, host=host, scheme=scheme, target="/dash?q=1")
        assert answer.status == 401, (host, answer)
        assert answer.headers["X-Auth-Login-Url"] == login_url(SSO_PUBLIC, rd), host
        browser = await ask(http, sso.url, mode, host=host, scheme=scheme, target="/dash?q=1", accept=HTML)
        if mode == "traefik":
            assert browser.status == 302 and browser.headers["Location"] == login_url(SSO_PUBLIC, rd)


async def test_envoy_without_forwarded_proto_assumes_https(sso: Stack, http: aiohttp.ClientSession) -> None:
    async with http.get(URL(sso.url + "/_auth/verify/dash?q=1", encoded=True),
                        headers={"Host": "login.example.test", "Accept": JSON}) as resp:
        assert resp.status == 401
        assert resp.headers["X-Auth-Login-Url"] == login_url(SSO_PUBLIC, "/dash?q=1")


async def test_sso_login_started_on_a_sibling_host_returns_there_and_covers_siblings(
    sso: Stack, http: aiohttp.ClientSession
) -> None:
    first = await ask(http, sso.url, "traefik", host="app2.example.test", scheme="https", target="/dash?q=1",
                      accept=HTML)
    assert first.status == 302
    done = await manual_login(sso.url, first.headers["Location"])
    assert done.final_location == "https://app2.example.test/dash?q=1"
    session_header = next(h for h in done.set_cookie_headers if h.startswith("__Secure-gw_session="))
    attributes = {a.strip().split("=")[0].lower(): a.strip() for a in session_header.split(";")[1:]}
    assert attributes["domain"].lower() in ("domain=example.test", "domain=.example.test")
    assert "secure" in attributes and "httponly" in attributes
    cookie = done.cookies["__Secure-gw_session"]
    for mode in MODES:
        for host in ("app2.example.test", "app3.example.test", "login.example.test"):
            answer = await ask(http, sso.url, mode, host=host, scheme="https", target="/dash", cookie=cookie,
                               cookie_name="__Secure-gw_session")
            assert_identity(answer, ASA)
        # The cookie's name carries the prefix: a bare gw_session with the same value is no session.
        bare = await ask(http, sso.url, mode, host="app2.example.test", scheme="https", target="/dash", cookie=cookie)
        assert bare.status == 401
