"""attacks.md A: open redirect through the login return target (rd=) and the logout, through a real login
at the development IdP (T01-T04)."""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from yarl import URL

from tests.security.helpers import (
    assert_no_traceback,
    assert_same_origin_relative,
    dev_login_outcome,
    finish_at_devidp,
    raw_http,
    request_bytes,
)
from tests.support.fake_op import fetch, jar
from tests.support.stack import Stack, parse_forms

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: T01 payloads, inserted raw into the query as curl would send them.
T01_PAYLOADS = [
    "/%5Cevil.example",
    "/\\evil.example",
    "//evil.example",
    "///evil.example",
    "/%09/evil.example",
    "/%2F%2Fevil.example",
    "/%2f%5c%2fevil.example",
    "/./\\evil.example",
    "/./../../\\evil.example",
    "https:evil.example",
    "https://evil.example",
    "//app.example.test@evil.example",
    "javascript:alert(1)",
    "/%0d%0aLocation:%20https://evil.example",
    # further variants of the same families
    "%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "/%25252F%25252Fevil.example",
    "\\\\evil.example",
    "/%5C%5Cevil.example",
    "/%0a/evil.example",
    "/%0b/evil.example",
    "/%0d/evil.example",
    "/%00/evil.example",
    "/%E3%80%80/evil.example",
    "/.%2F%2Fevil.example",
    "/../%2F%2Fevil.example",
    "//%09/evil.example",
    "/\\/evil.example",
    "http:/\\evil.example",
    "HTTPS://evil.example",
    "data:text/html,<script>alert(1)</script>",
    "/private?a=1%23@evil.example",
]

#: T02: allow-list suffix, port and spelling confusion. The gateway allows no absolute target at all.
T02_PAYLOADS = [
    "https://evil-app.example.test/",
    "https://app.example.test.evil.example/",
    "https://evil.example/?rd=app.example.test",
    "https://app.example.test:3838/",
    "https://app.example.test%2eevil.example/",
    "https://google.fr\\.app.example.test/",
    "https://APP.EXAMPLE.TEST./",
    "http://127.0.0.1/",
    "http://127.0.0.1.evil.example/",
]


async def test_t01_control_a_safe_target_is_kept(dev_stack: Stack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        final = await dev_login_outcome(http, dev_stack, f"{dev_stack.url}/_auth/login?rd=/private/a%3Fx%3D1")
    assert final.status == 302
    assert final.location == "/private/a?x=1"
    assert final.sets("gw_session")


@pytest.mark.parametrize("payload", T01_PAYLOADS + T02_PAYLOADS)
async def test_t01_t02_login_return_target_never_leaves_the_origin(dev_stack: Stack, payload: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        final = await dev_login_outcome(http, dev_stack, f"{dev_stack.url}/_auth/login?rd={payload}")
    assert final.status == 302, final.body
    assert final.sets("gw_session")
    assert_same_origin_relative(final.location)
    # Every payload here is an attack: the gateway must fall back to its default, not keep a variant.
    assert final.location == "/", final.location


@pytest.mark.parametrize("payload", [
    "/%20/evil.example",  # a plain space: a same-origin path, kept or dropped but never a foreign host
    "/private/a?next=//evil.example",
    "/private/%2F%2Fevil.example",
])
async def test_t01_local_paths_with_suspicious_parts_stay_local(dev_stack: Stack, payload: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        final = await dev_login_outcome(http, dev_stack, f"{dev_stack.url}/_auth/login?rd={payload}")
    assert final.status == 302
    assert_same_origin_relative(final.location)


async def test_t01_repeated_rd_parameter_does_not_smuggle_a_second_target(dev_stack: Stack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        final = await dev_login_outcome(http, dev_stack,
                                        f"{dev_stack.url}/_auth/login?rd=/ok&rd=//evil.example")
    assert final.status == 302
    assert_same_origin_relative(final.location)
    assert final.location in ("/ok", "/")


@pytest.mark.parametrize("control", ["\t", "\x0b", "\r", "\n", "\x0c", "\x00", " "])
async def test_t01_raw_control_characters_in_the_start_request(dev_stack: Stack, control: str) -> None:
    target = f"/_auth/login?rd=/{control}/evil.example"
    raw = await raw_http(int(dev_stack.url.rsplit(":", 1)[1]), request_bytes(target))
    if raw.status == 400:
        assert_no_traceback(raw.text)
        return
    # Accepted by the parser: the login must then end on a local target.
    assert raw.status == 302, raw.text
    login_cookie = SimpleCookie()
    for line in raw.head.split("\r\n"):
        if line.lower().startswith("set-cookie:"):
            login_cookie.load(line.split(":", 1)[1].strip())
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        http.cookie_jar.update_cookies({k: m.value for k, m in login_cookie.items()}, URL(dev_stack.url))
        location = raw.header("Location")
        assert location is not None
        final = await finish_at_devidp(http, dev_stack, location)
    assert_same_origin_relative(final.location)


# ------------------------------------------------------------------------------------------------ T03


async def _start_at_devidp(http: aiohttp.ClientSession, stack: Stack, rd: str) -> tuple[str, str]:
    """Start a login and pick the person; return (callback URL, the login cookie value)."""
    start = await fetch(http, "GET", f"{stack.url}/_auth/login?rd={rd}", headers={"Accept": "text/html"})
    assert start.status == 302 and start.location
    async with http.get(start.location) as page_resp:
        page, page_url = await page_resp.text(), str(page_resp.url)
    form = next(f for f in parse_forms(page) if "Log in as Åsa Öberg" in f["text"])
    action = str(URL(page_url).join(URL(form["action"])))
    async with http.post(action, data=form["fields"], allow_redirects=False) as decided:
        callback = decided.headers["Location"]
    cookies = {c.key: c.value for c in http.cookie_jar}
    return callback, cookies["gw_session_login"]


def _flip(value: str, index: int) -> str:
    ch = value[index]
    return value[:index] + ("A" if ch != "A" else "B") + value[index + 1:]


@pytest.mark.parametrize("where", [10, 20, -5, -1])
async def test_t03_tampered_login_cookie_fails_the_callback(dev_stack: Stack, where: int) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        callback, cookie = await _start_at_devidp(http, dev_stack, "/private/a")
        http.cookie_jar.update_cookies({"gw_session_login": _flip(cookie, where)}, URL(dev_stack.url))
        final = await fetch(http, "GET", callback, headers={"Accept": "text/html"})
    assert final.status == 400, final.body
    assert not final.sets("gw_session")
    assert final.location is None
    assert_no_traceback(final.body)


async def test_t03_state_with_an_embedded_url_is_refused(dev_stack: Stack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        callback, _ = await _start_at_devidp(http, dev_stack, "/private/a")
        parts = urlsplit(callback)
        query = parse_qs(parts.query)
        state = query["state"][0]
        forged = callback.replace(f"state={state}", f"state={state}%3Ahttps%3A%2F%2Fevil.example")
        final = await fetch(http, "GET", forged, headers={"Accept": "text/html"})
        assert final.status == 400
        assert not final.sets("gw_session")
        # The genuine state still ends on the genuine target, not on anything from the forged request.
        genuine = await fetch(http, "GET", callback, headers={"Accept": "text/html"})
    assert genuine.status == 302 and genuine.location == "/private/a"


async def test_t03_login_cookie_from_a_flow_with_an_evil_target_cannot_redirect(dev_stack: Stack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as attacker, aiohttp.ClientSession(cookie_jar=jar()) as victim:
        _, evil_cookie = await _start_at_devidp(attacker, dev_stack, "https://evil.example/")
        callback, _ = await _start_at_devidp(victim, dev_stack, "/private/a")
        victim.cookie_jar.update_cookies({"gw_session_login": evil_cookie}, URL(dev_stack.url))
        final = await fetch(victim, "GET", callback, headers={"Accept": "text/html"})
    # The attacker's cookie holds another state: the victim's callback does not match it.
    assert final.status == 400
    assert not final.sets("gw_session")


# ------------------------------------------------------------------------------------------------ T04


@pytest.mark.parametrize("payload", ["//evil.example", "https://evil.example", "/%5Cevil.example", "/\\evil.example"])
@pytest.mark.parametrize("param", ["rd", "return_to", "post_logout_redirect_uri", "redirect_uri"])
@pytest.mark.parametrize("logged_in", [False, True])
async def test_t04_logout_redirect_is_never_foreign(dev_stack: Stack, payload: str, param: str,
                                                    logged_in: bool) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        if logged_in:
            final = await dev_login_outcome(http, dev_stack, f"{dev_stack.url}/_auth/login?rd=/private")
            assert final.sets("gw_session")
        page = await fetch(http, "GET", f"{dev_stack.url}/_auth/logout?{param}={payload}",
                           headers={"Accept": "text/html"})
        assert page.status == 200 and page.location is None
        assert "evil.example" not in page.body
        done = await fetch(http, "POST", f"{dev_stack.url}/_auth/logout?{param}={payload}",
                           data={param: payload}, headers={"Accept": "text/html"})
    assert done.status in (302, 303)
    location = done.location
    assert location is not None and "evil" not in location
    if location.startswith(dev_stack.issuer):
        # The OP's end-session endpoint: its post_logout_redirect_uri is the configured static page.
        query = parse_qs(urlsplit(location).query)
        assert query["post_logout_redirect_uri"] == [f"{dev_stack.url}/_auth/logged-out"]
    else:
        assert_same_origin_relative(location)
    assert done.clears("gw_session")
