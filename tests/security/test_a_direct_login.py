"""``direct_login_redirect: true``: a browser navigation without a session gets its 302 straight to the
provider, so the return target comes from the request path itself, not from ``rd=``. The login must still
land on that path and only there (attacks.md T01), path tricks must never reach the upstream (T15), a
stale session cookie is cleared (T35), and API clients keep the 401 JSON. T37 (fixation) needs no new
case: this path starts a login only when the browser presented no valid session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from tests.security.helpers import (
    RawResponse,
    assert_no_traceback,
    assert_same_origin_relative,
    finish_at_devidp,
    raw_http,
    request_bytes,
)
from tests.support.fake_op import Outcome, fetch, jar
from tests.support.ports import free_port
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOGIN_COOKIE = "gw_session_login"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_direct_stack() -> AsyncIterator[Stack]:
    def customize(config: dict[str, Any]) -> None:
        config["direct_login_redirect"] = True

    async with running_stack(customize=customize) as stack:
        yield stack


@pytest.fixture
def direct_stack(shared_direct_stack: Stack) -> Stack:
    shared_direct_stack.echo.requests.clear()
    return shared_direct_stack


def port(stack: Stack) -> int:
    return int(stack.url.rsplit(":", 1)[1])


def set_cookies(raw: RawResponse) -> SimpleCookie:
    cookies = SimpleCookie()
    for line in raw.head.split("\r\n"):
        if line.lower().startswith("set-cookie:"):
            cookies.load(line.split(":", 1)[1].strip())
    return cookies


async def authorize_endpoint(stack: Stack) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.issuer}/.well-known/openid-configuration") as resp:
        return str((await resp.json())["authorization_endpoint"])


async def start(stack: Stack, target: str, *, method: str = "GET", cookie: str | None = None) -> RawResponse:
    """The first navigation, sent byte for byte as given (no client normalisation of the path)."""
    headers = [("Cookie", cookie)] if cookie else []
    return await raw_http(port(stack), request_bytes(target, method=method, headers=headers))


async def finish(stack: Stack, started: RawResponse) -> tuple[Outcome, aiohttp.CookieJar]:
    """Carry the login cookie the start set, log in at the development IdP, and return the callback's answer."""
    browser = jar()
    browser.update_cookies({k: m.value for k, m in set_cookies(started).items() if m.value}, URL(stack.url))
    location = started.header("Location")
    assert location is not None
    async with aiohttp.ClientSession(cookie_jar=browser) as http:
        return await finish_at_devidp(http, stack, location), browser


async def test_a_navigation_goes_straight_to_the_provider_and_the_login_lands_where_it_started(
    direct_stack: Stack,
) -> None:
    started = await start(direct_stack, "/private/page?x=1&y=%C3%A5")
    assert started.status == 302, started.text
    location = started.header("Location")
    assert location is not None and location.startswith(await authorize_endpoint(direct_stack) + "?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["response_type"] == "code" and query["client_id"]
    assert query["redirect_uri"] == f"{direct_stack.url}/_auth/callback/dev"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 22 and len(query["nonce"]) >= 22 and query["state"] != query["nonce"]
    login_cookie = set_cookies(started)[LOGIN_COOKIE]
    assert login_cookie.value and login_cookie["httponly"] and login_cookie["samesite"] == "Lax"
    # No session cookie was sent, so none is cleared; nothing reached the upstream.
    assert "gw_session" not in set_cookies(started)
    assert direct_stack.echo.requests == []

    callback, browser = await finish(direct_stack, started)
    assert callback.status == 302 and callback.location == "/private/page?x=1&y=%C3%A5"
    assert callback.sets("gw_session")
    async with aiohttp.ClientSession(cookie_jar=browser) as http:
        answer = await fetch(http, "GET", f"{direct_stack.url}{callback.location}")
    assert answer.status == 200
    seen = direct_stack.echo.requests[-1]
    assert seen.path == "/private/page" and seen.query_string == "x=1&y=å"  # aiohttp decodes it
    assert seen.headers.getall("X-Auth-Country") == ["SE"] and seen.headers.get("X-Auth-Assertion")


async def test_a_logged_in_browser_is_proxied_not_redirected(direct_stack: Stack) -> None:
    callback, browser = await finish(direct_stack, await start(direct_stack, "/private/a"))
    assert callback.status == 302
    async with aiohttp.ClientSession(cookie_jar=browser) as http:
        again = await fetch(http, "GET", f"{direct_stack.url}/private/b", headers={"Accept": "text/html"})
    assert again.status == 200 and not again.set_cookies.get(LOGIN_COOKIE)
    assert direct_stack.echo.requests[-1].path == "/private/b"


@pytest.mark.parametrize("accept", ["application/json", "*/*"])
async def test_api_requests_still_get_the_401_with_the_login_url(direct_stack: Stack, accept: str) -> None:
    async with aiohttp.ClientSession() as http:
        answer = await fetch(http, "GET", f"{direct_stack.url}/api/orders?id=7", headers={"Accept": accept})
    assert answer.status == 401
    assert answer.headers["Content-Type"].startswith("application/json")
    assert '"error": "unauthenticated"' in answer.body
    assert f'"login_url": "{direct_stack.url}/_auth/login?rd=%2Fapi%2Forders%3Fid%3D7"' in answer.body
    assert LOGIN_COOKIE not in answer.set_cookies  # no login is started for a client that cannot follow it
    assert direct_stack.echo.requests == []


async def test_public_paths_and_the_login_route_are_unchanged(direct_stack: Stack) -> None:
    html = {"Accept": "text/html"}
    async with aiohttp.ClientSession() as http:
        public = await fetch(http, "GET", f"{direct_stack.url}/public/x", headers=html)
        login = await fetch(http, "GET", f"{direct_stack.url}/_auth/login?rd=/private/z", headers=html)
    assert public.status == 200 and direct_stack.echo.requests[-1].path == "/public/x"
    assert login.status == 302 and login.location is not None
    assert login.location.startswith(await authorize_endpoint(direct_stack) + "?")


async def test_head_needs_a_login_too_and_is_not_forwarded(direct_stack: Stack) -> None:
    started = await start(direct_stack, "/private/x", method="HEAD")
    assert started.status == 302
    location = started.header("Location")
    assert location is not None and location.startswith(await authorize_endpoint(direct_stack) + "?")
    assert direct_stack.echo.requests == []


# ------------------------------------------------------------------------------------------------ T01

#: T01 payloads as request paths: the path the browser asked for becomes the return target. These pass the
#: path normaliser, start a login, and must come back to this local path (never to a host).
T01_LANDS = {
    "//evil.example": "/evil.example",
    "///evil.example": "/evil.example",
    "//evil.example/private": "/evil.example/private",
    "//app.example.test@evil.example": "/app.example.test@evil.example",
    "/%E3%80%80/evil.example": "/",  # an ideographic space could be read as nothing: the target is refused
    "/private?a=1%23@evil.example": "/private?a=1%23@evil.example",
    "/private?next=//evil.example": "/private?next=//evil.example",
}

#: These the path normaliser refuses (backslash, encoded slash, control characters): the gateway's 400 page.
T01_REFUSED = [
    "/\\evil.example",
    "/%5Cevil.example",
    "/%5C%5Cevil.example",
    "/%2F%2Fevil.example",
    "/%2f%5c%2fevil.example",
    "/./\\evil.example",
    "/./../../\\evil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d%0aLocation:%20https://evil.example",
    "/%00/evil.example",
    "/.%2F%2Fevil.example",
    "/../%2F%2Fevil.example",
    "/\\/evil.example",
]


async def assert_gateway_400(stack: Stack, target: str) -> None:
    refused = await start(stack, target)
    assert refused.status == 400, refused.text
    assert (refused.header("Content-Type") or "").startswith("text/html")
    assert "Sign-in problem" in refused.text
    assert_no_traceback(refused.text)
    assert refused.header("Location") is None and LOGIN_COOKIE not in set_cookies(refused)
    assert stack.echo.requests == []


async def assert_login_lands(stack: Stack, target: str, expected: str) -> None:
    started = await start(stack, target)
    assert stack.echo.requests == []
    assert started.status == 302, started.text
    location = started.header("Location")
    assert location is not None and "\r" not in location and "\n" not in location
    assert location.startswith(await authorize_endpoint(stack) + "?")
    callback, _ = await finish(stack, started)
    assert callback.status == 302
    assert_same_origin_relative(callback.location)
    assert callback.location == expected


@pytest.mark.parametrize(("target", "expected"), list(T01_LANDS.items()))
async def test_t01_a_login_started_from_a_suspicious_path_returns_to_that_local_path(
    direct_stack: Stack, target: str, expected: str
) -> None:
    await assert_login_lands(direct_stack, target, expected)


@pytest.mark.parametrize("target", T01_REFUSED)
async def test_t01_paths_the_normaliser_refuses_get_the_400_page_and_start_no_login(
    direct_stack: Stack, target: str
) -> None:
    await assert_gateway_400(direct_stack, target)


@pytest.mark.parametrize("control", ["\t", "\x0b", "\x0c", "\x00"])
async def test_t01_raw_control_characters_in_the_path_are_refused_by_the_http_parser(
    direct_stack: Stack, control: str
) -> None:
    """aiohttp's parser answers 400 before the gateway runs: no login starts, nothing is forwarded."""
    refused = await start(direct_stack, f"/{control}/evil.example")
    assert refused.status == 400, refused.text
    assert_no_traceback(refused.text)
    assert refused.header("Location") is None and LOGIN_COOKIE not in set_cookies(refused)
    assert direct_stack.echo.requests == []


# ------------------------------------------------------------------------------------------------ T15


@pytest.mark.parametrize(
    "target", ["/public/../private/x", "/public/%2e%2e/private/x", "/public/.%2e/private/x", "/PUBLIC/../private/x"]
)
async def test_t15_traversal_out_of_a_public_prefix_logs_in_for_the_normalised_path(
    direct_stack: Stack, target: str
) -> None:
    await assert_login_lands(direct_stack, target, "/private/x")


@pytest.mark.parametrize(
    "target",
    ["/public/%2E%2E%2Fprivate/x", "/public/..%2fprivate/x", "/public/..%5cprivate/x", "/public;/../private/x"],
)
async def test_t15_ambiguous_traversal_gets_the_400_page(direct_stack: Stack, target: str) -> None:
    await assert_gateway_400(direct_stack, target)


# ------------------------------------------------------------------------------------------------ T35


@pytest.mark.parametrize("cookie", ["gw_session=bogus", "gw_session=v1.AAAA", "gw_session=r1.x%0d%0aFLUSHALL"])
async def test_t35_an_unusable_session_cookie_is_cleared_on_the_way_to_the_provider(
    direct_stack: Stack, cookie: str
) -> None:
    started = await start(direct_stack, "/private/x", cookie=cookie)
    assert started.status == 302
    cleared = set_cookies(started)["gw_session"]
    assert cleared.value == "" and cleared["max-age"] == "0"
    assert set_cookies(started)[LOGIN_COOKIE].value
    assert direct_stack.echo.requests == []


async def test_t35_a_logged_out_cookie_does_not_come_back_and_is_cleared(direct_stack: Stack) -> None:
    callback, browser = await finish(direct_stack, await start(direct_stack, "/private/a"))
    session_cookie = callback.set_cookies["gw_session"].value
    async with aiohttp.ClientSession(cookie_jar=browser) as http:
        logged_out = await fetch(http, "POST", f"{direct_stack.url}/_auth/logout")
    assert logged_out.status == 303, logged_out.body
    direct_stack.echo.requests.clear()
    replay = await start(direct_stack, "/private/a", cookie=f"gw_session={session_cookie}")
    assert replay.status == 302
    location = replay.header("Location")
    assert location is not None and location.startswith(await authorize_endpoint(direct_stack) + "?")
    assert set_cookies(replay)["gw_session"]["max-age"] == "0"
    assert direct_stack.echo.requests == []


# ------------------------------------------------------------------------------------- fail closed


async def test_an_unreachable_provider_gives_a_clear_page_and_forwards_nothing() -> None:
    """With the provider's discovery unreachable, the navigation gets the 502 page the login route gives
    (without the option the first hop answers 302 without asking the provider; /_auth/login then gives this page)."""
    dead_issuer = f"http://127.0.0.1:{free_port()}"

    def customize(config: dict[str, Any]) -> None:
        config["direct_login_redirect"] = True
        config["providers"][0].update(issuer=dead_issuer, timeout="1s")

    async with running_stack(customize=customize) as stack:
        page = await start(stack, "/private/x?y=1")
        assert page.status == 502, page.text
        assert (page.header("Content-Type") or "").startswith("text/html")
        assert "The identity provider could not be reached" in page.text and "idp_unavailable" in page.text
        assert_no_traceback(page.text)
        assert LOGIN_COOKIE not in set_cookies(page) and page.header("Location") is None
        api = await raw_http(port(stack), request_bytes("/private/x", accept="application/json"))
        assert api.status == 401 and "/_auth/login?rd=%2Fprivate%2Fx" in api.text
        assert stack.echo.requests == []
