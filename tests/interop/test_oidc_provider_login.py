"""Log in through the gateway against a real, certified OpenID Provider (oidc-provider 9, Node.js).

One scripted browser (an aiohttp.ClientSession with a cookie jar) does what a person does: opens a
protected page, signs in on the provider's login form, consents, comes back through the gateway's
callback and lands on the page. Every client authentication method the gateway offers is combined
with both response modes. The test then checks what the protected application received.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from gateway.protocol.claims import decode_header_value
from gateway.protocol.jws import parse_jwks, verify
from tests.support.echo import EchoUpstream
from tests.support.gateway import run_gateway
from tests.support.ports import free_port

if TYPE_CHECKING:
    from tests.interop.conftest import OpenIDProvider

pytestmark = pytest.mark.interop

SSN = "196802020575"
NAME = "Åsa Öberg"
COUNTRY = "SE"
ASSERTION_TTL = 60
PAGE = "/private/page"
MAX_HOPS = 25
TIMEOUT = aiohttp.ClientTimeout(total=30)
JSON = {"Accept": "application/json"}
BROWSER_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) eid-gateway-interop-test",
}

#: client_id at the OP -> (client_auth in the gateway config, test id)
CLIENTS = {
    "gw-basic": ("client_secret_basic", "client-secret-basic"),
    "gw-post": ("client_secret_post", "client-secret-post"),
    "gw-pkjwt-rs": ("private_key_jwt", "private-key-jwt-rs256"),
    "gw-pkjwt-es": ("private_key_jwt", "private-key-jwt-es256"),
}


# --- a scripted browser -------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """Collects every <form> with its named <input>s (the only controls the pages here use)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(
                action=attributes.get("action", ""), method=attributes.get("method", "get").upper()
            )
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attributes.get("name"):
            self._current.fields[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


@dataclass
class Page:
    url: str
    status: int
    headers: CIMultiDictProxy[str]
    text: str
    #: Every (method, url, status) on the way here, redirects included.
    trail: list[tuple[str, str, int]]


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def navigate(
    browser: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    stop_at: str | None = None,
) -> Page:
    """Request ``url`` and follow redirects as a browser does (303, and 302 after POST, become GET).

    With ``stop_at`` (an origin), a redirect to that origin is returned instead of followed.
    """
    trail: list[tuple[str, str, int]] = []
    for _ in range(MAX_HOPS):
        async with browser.request(
            method, url, data=data, headers={**BROWSER_HEADERS, **(headers or {})}, allow_redirects=False
        ) as response:
            text = await response.text(errors="replace")
            trail.append((method, url, response.status))
            location = response.headers.get("Location")
            if response.status not in (301, 302, 303, 307, 308) or location is None:
                return Page(url, response.status, response.headers, text, trail)
            next_url = urljoin(url, location)
            if stop_at is not None and origin(next_url) == stop_at:
                return Page(url, response.status, response.headers, text, trail)
        if response.status in (301, 302, 303) and method != "HEAD":
            method, data, headers = "GET", None, None
        url = next_url
    raise AssertionError(f"more than {MAX_HOPS} redirects: {trail}")


async def submit(browser: aiohttp.ClientSession, page: Page, form: Form, **kwargs: Any) -> Page:
    """Submit ``form`` of ``page`` like a browser: with the page's origin in the Origin header."""
    action = urljoin(page.url, form.action or page.url)
    if form.method == "POST":
        return await navigate(
            browser, "POST", action, data=form.fields, headers={"Origin": origin(page.url)}, **kwargs
        )
    raise AssertionError(f"unexpected {form.method} form to {action}")


def only_form(page: Page) -> Form:
    forms = parse_forms(page.text)
    assert len(forms) == 1, (
        f"expected one form at {page.url} (HTTP {page.status}), got {len(forms)}:\n{page.text[:2000]}"
    )
    return forms[0]


async def sign_in_at_provider(
    browser: aiohttp.ClientSession, op: OpenIDProvider, gateway_url: str, *, login: str, response_mode: str
) -> Page:
    """From the gateway's protected page to the same page, signed in; returns the landing page."""
    gateway_origin = origin(gateway_url)

    # A person opens the protected page: the gateway sends the browser to its login route.
    page = await navigate(browser, "GET", f"{gateway_url}{PAGE}", stop_at=op.issuer)
    _, first_url, first_status = page.trail[0]
    assert first_status == 302, f"GET {first_url} without a session: expected 302, got {page.trail}"
    assert len(page.trail) >= 2, f"expected a redirect to the login route: {page.trail}"
    login_url = page.trail[1][1]
    assert urlsplit(login_url).path == "/_auth/login", page.trail
    assert parse_qs(urlsplit(login_url).query).get("rd") == [PAGE], page.trail

    # The login route sends it to the provider's authorization endpoint.
    assert page.status in (302, 303), (
        f"expected a redirect to the provider, got {page.status}: {page.text[:500]}"
    )
    authorize_url = urljoin(page.url, page.headers["Location"])
    assert authorize_url.startswith(f"{op.issuer}/auth?"), authorize_url
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    assert query.get("response_type") == "code", query
    assert query.get("redirect_uri") == op.callback_url, query
    assert query.get("code_challenge_method") == "S256", query
    assert query.get("code_challenge") and query.get("state") and query.get("nonce"), query
    assert "openid" in query.get("scope", "").split(), query
    assert query.get("response_mode", "query") == response_mode, query

    # The provider's sign-in form (any login, any password), then its consent form.
    page = await navigate(browser, "GET", authorize_url, stop_at=gateway_origin)
    form = only_form(page)
    assert form.fields.get("prompt") == "login", f"expected the login form, got {form}"
    form.fields.update(login=login, password="any password will do")
    page = await submit(browser, page, form, stop_at=gateway_origin)
    form = only_form(page)
    assert form.fields.get("prompt") == "consent", f"expected the consent form, got {form}"
    page = await submit(browser, page, form, stop_at=gateway_origin)

    if response_mode == "form_post":
        # The provider answers with a self-submitting form; post it to the gateway as the browser would.
        assert page.status == 200, f"expected the form_post page, got {page.status}: {page.trail}"
        form = only_form(page)
        assert form.action == op.callback_url, form
        assert form.method == "POST", form
        assert form.fields.get("code") and form.fields.get("state"), (
            f"no code in the form_post response: {form}"
        )
        page = await submit(browser, page, form)
    else:
        assert page.status in (302, 303), (
            f"expected a redirect back to the gateway, got {page.status}: {page.text[:500]}"
        )
        callback = urljoin(page.url, page.headers["Location"])
        assert urlsplit(callback).path == urlsplit(op.callback_url).path, callback
        assert "code" in parse_qs(urlsplit(callback).query), (
            f"the provider answered with an error: {callback}"
        )
        page = await navigate(browser, "GET", callback)
    return page


# --- the gateway under test -----------------------------------------------------------------------


def gateway_config(op: OpenIDProvider, client_id: str, response_mode: str, upstream: str) -> dict[str, Any]:
    provider: dict[str, Any] = {
        "name": op.provider_name,
        "flow": "redirect",
        "issuer": op.issuer,
        "client_id": client_id,
        "client_auth": CLIENTS[client_id][0],
        "response_mode": response_mode,
        "scopes": ["openid", "profile"],
        "acr_values": [],
        "claims": {"ssn": "ssn", "name": "name", "country": "country"},
    }
    if client_id in op.client_secrets:
        provider["client_secret"] = "${GW_CLIENT_SECRET}"
    else:
        provider["private_key_file"] = str(op.client_key_files[client_id])
        if client_id == "gw-pkjwt-es":
            provider["private_key_id"] = op.client_key_ids[client_id]
    return {
        "listen": f"127.0.0.1:{op.gateway_port}",
        "public_url": op.gateway_url,
        "upstream": upstream,
        "providers": [provider],
        "session": {"secret": secrets.token_urlsafe(32), "lifetime": "8h", "idle_timeout": "1h"},
        "headers": {"ssn": "X-Auth-Ssn", "name": "X-Auth-Name", "country": "X-Auth-Country"},
        "assertion": {"header": "X-Auth-Assertion", "audience": "upstream", "ttl": f"{ASSERTION_TTL}s"},
        "public_paths": ["/healthz"],
        "trusted_proxies": [],
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
    }


def requests_for(echo: EchoUpstream, path: str) -> list[Any]:
    return [r for r in echo.requests if r.path.split("?")[0] == path]


def only_header(headers: Any, name: str) -> str:
    values = headers.getall(name, [])
    assert len(values) == 1, f"{name}: expected exactly one value, the upstream got {values}"
    return str(values[0])


async def verify_assertion(browser: aiohttp.ClientSession, gateway_url: str, token: str) -> dict[str, Any]:
    async with browser.get(f"{gateway_url}/_auth/jwks.json") as response:
        assert response.status == 200, f"GET /_auth/jwks.json: {response.status}"
        document = await response.json(content_type=None)
    keys = parse_jwks(document)
    assert keys, f"no usable key in /_auth/jwks.json: {document}"
    return verify(token, keys, algorithms={"ES256"})


# --- the tests ----------------------------------------------------------------------------------


CASES = [
    pytest.param(client_id, mode, id=f"{test_id}-{mode.replace('_', '-')}")
    for client_id, (_, test_id) in CLIENTS.items()
    for mode in ("query", "form_post")
]


@pytest.mark.parametrize(("client_id", "response_mode"), CASES)
async def test_login_through_oidc_provider(
    oidc_provider: OpenIDProvider, client_id: str, response_mode: str
) -> None:
    op = oidc_provider
    login = f"user-{client_id}-{response_mode}"
    environ = {"GW_CLIENT_SECRET": op.client_secrets.get(client_id, "unused")}
    async with EchoUpstream() as echo:
        config = gateway_config(op, client_id, response_mode, echo.url)
        async with (
            run_gateway(config, environ=environ) as gw,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=TIMEOUT) as browser,
        ):
            gateway_url = gw.url.rstrip("/")
            assert gateway_url == op.gateway_url, (
                "run_gateway must listen where the OP sends the browser back"
            )

            # --- sign in ---
            try:
                page = await sign_in_at_provider(
                    browser, op, gateway_url, login=login, response_mode=response_mode
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- OP log ---\n{op.log_tail()}") from None
            assert page.url == f"{gateway_url}{PAGE}", f"did not land on the protected page: {page.trail}"
            assert page.status == 200, f"GET {page.url}: {page.status} {page.text[:500]}\n{op.log_tail()}"

            # --- what the application received ---
            seen = requests_for(echo, PAGE)
            assert len(seen) == 1, f"the upstream saw {len(seen)} requests for {PAGE}"
            headers = seen[0].headers
            assert only_header(headers, "X-Auth-Ssn") == SSN
            assert decode_header_value(only_header(headers, "X-Auth-Name")) == NAME
            assert only_header(headers, "X-Auth-Country") == COUNTRY

            token = only_header(headers, "X-Auth-Assertion")
            claims = await verify_assertion(browser, gateway_url, token)
            now = time.time()
            assert claims["iss"] == gateway_url
            assert claims["aud"] in ("upstream", ["upstream"]), claims["aud"]
            assert claims["exp"] - claims["iat"] == ASSERTION_TTL, claims
            assert now - 30 <= claims["iat"] <= now + 5, claims
            assert claims["sub"] == login, claims  # the provider's subject: the login name typed in
            assert claims["ssn"] == SSN
            assert claims["name"] == NAME
            assert claims["country"] == COUNTRY

            # --- a client cannot smuggle its own identity headers past the gateway ---
            spoofed = {
                "X-Auth-Ssn": "190001019999",
                "X-Auth-Name": "Mallory",
                "X-Auth-Country": "NO",
                "X-Auth-Assertion": "forged.by.client",
            }
            page = await navigate(browser, "GET", f"{gateway_url}{PAGE}?spoof=1", headers=spoofed)
            assert page.status == 200, f"authenticated GET with spoofed headers: {page.status} {page.trail}"
            headers = requests_for(echo, PAGE)[-1].headers
            assert only_header(headers, "X-Auth-Ssn") == SSN
            assert decode_header_value(only_header(headers, "X-Auth-Name")) == NAME
            assert only_header(headers, "X-Auth-Country") == COUNTRY
            assert (await verify_assertion(browser, gateway_url, only_header(headers, "X-Auth-Assertion")))[
                "ssn"
            ] == SSN

            # --- /_auth/userinfo: the identity with the session, 401 without ---
            async with browser.get(f"{gateway_url}/_auth/userinfo", headers=JSON) as response:
                assert response.status == 200, f"GET /_auth/userinfo with a session: {response.status}"
                userinfo = await response.json()
            assert userinfo.get("ssn") == SSN, userinfo
            assert userinfo.get("name") == NAME, userinfo
            assert userinfo.get("country") == COUNTRY, userinfo
            assert userinfo.get("sub") == login, userinfo
            assert userinfo.get("idp") == op.provider_name, userinfo
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as stranger,
                stranger.get(f"{gateway_url}/_auth/userinfo", headers=JSON) as response,
            ):
                assert response.status == 401, f"GET /_auth/userinfo without a session: {response.status}"
                assert SSN not in await response.text()

            # --- logout: the gateway ends its session, then signs out at the provider too ---
            page = await navigate(
                browser,
                "POST",
                f"{gateway_url}/_auth/logout",
                headers={"Origin": gateway_url},
                stop_at=op.issuer,
            )
            assert page.status == 303, f"POST /_auth/logout: {page.status} {page.text[:500]}"
            async with browser.get(f"{gateway_url}/_auth/userinfo", headers=JSON) as response:
                assert response.status == 401, f"GET /_auth/userinfo after logout: {response.status}"
            end_session = urljoin(page.url, page.headers["Location"])
            assert end_session.startswith(f"{op.issuer}/session/end?"), end_session
            query = {k: v[0] for k, v in parse_qs(urlsplit(end_session).query).items()}
            assert query.get("client_id") == client_id, query
            assert query.get("post_logout_redirect_uri") == f"{gateway_url}/_auth/logged-out", query
            page = await navigate(browser, "GET", end_session)
            form = only_form(page)  # the provider asks "Do you want to sign-out?"
            assert "xsrf" in form.fields, f"expected the provider's logout confirmation, got {form}"
            form.fields["logout"] = "yes"  # the "Yes, sign me out" button, associated by form="op.logoutForm"
            page = await submit(browser, page, form)
            assert page.url == f"{gateway_url}/_auth/logged-out", f"logout ended elsewhere: {page.trail}"
            assert page.status == 200, f"GET /_auth/logged-out: {page.status}"

            before = len(requests_for(echo, PAGE))
            page = await navigate(browser, "GET", f"{gateway_url}{PAGE}", stop_at=op.issuer)
            assert page.trail[0][2] == 302, f"after logout GET {PAGE} must go to login again: {page.trail}"
            assert urlsplit(page.trail[1][1]).path == "/_auth/login", page.trail
            assert len(requests_for(echo, PAGE)) == before, "the upstream was reached after logout"
