"""A gateway cookie sent more than once is never resolved by picking one (issue 15, item 2), against the real
gateway on loopback: two valid sessions, valid + garbage in either order, identical copies, two Cookie lines
(raw socket: clients merge them); the browser is sent to the login with every variant cleared, an API client
gets 401, forward-auth refuses, nothing is forwarded with either identity; login-state and poll-binding
cookies sent twice refuse the step; it is counted in gateway_cookie_ambiguous_total."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from gateway.keys import generate_ec_pem
from tests.security.helpers import raw_http, request_bytes
from tests.security.test_i_headless import BINDING, PROVIDER, START, STATUS, headless_provider
from tests.support.fake_op import OpStack, begin_login, fetch, jar, login, running_op_stack
from tests.support.process import metric

pytestmark = pytest.mark.asyncio(loop_scope="module")

S = "gw_session"
LOGIN = "gw_session_login"
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


@dataclass
class Sessions:
    stack: OpStack
    a: str
    b: str


async def _session(stack: OpStack) -> str:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        done = await login(http, stack)
        assert done.sets(S), done.set_cookies
        return done.set_cookies[S].value


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_sessions(shared_op_stack: OpStack) -> AsyncIterator[Sessions]:
    a, b = await _session(shared_op_stack), await _session(shared_op_stack)
    assert a != b
    yield Sessions(shared_op_stack, a, b)


@pytest.fixture
def sessions(shared_sessions: Sessions) -> Sessions:
    shared_sessions.stack.reset()
    return shared_sessions


def _cases(s: Sessions) -> dict[str, list[str]]:
    """Cookie lines per case; every one carries the session cookie name twice."""
    a, b = s.a, s.b
    return {
        "two valid": [f"{S}={a}; {S}={b}"],
        "two valid, other order": [f"{S}={b}; {S}={a}"],
        "identical copies": [f"{S}={a}; {S}={a}"],
        "valid then garbage": [f"theme=dark; {S}={a}; {S}=garbage"],
        "garbage then valid": [f"{S}=%%%; {S}={a}; lang=sv"],
        "valid and empty": [f"{S}={a}; {S}="],
        "valid and a malformed copy": [f"{S}={a};{S}={b}"],
        "two lines": [f"{S}={a}", f"{S}={b}"],
        "two lines, identical": [f"theme=dark; {S}={a}", f"{S}={a}"],
        "two lines, garbage first": [f"{S}=garbage", f"{S}={a}"],
    }


CASE_NAMES = [
    "two valid", "two valid, other order", "identical copies", "valid then garbage", "garbage then valid",
    "valid and empty", "valid and a malformed copy", "two lines", "two lines, identical", "two lines, garbage first",
]


def _cookie_headers(lines: list[str]) -> list[tuple[str, str]]:
    return [("Cookie", line) for line in lines]


async def _metric(stack: OpStack, cookie: str) -> float:
    assert stack.gateway.metrics_url is not None
    async with aiohttp.ClientSession() as http, http.get(stack.gateway.metrics_url) as resp:
        return metric(await resp.text(), "gateway_cookie_ambiguous_total", cookie=cookie)


async def test_control_one_session_is_forwarded(sessions: Sessions) -> None:
    raw = await raw_http(sessions.stack.port, request_bytes("/private/x", headers=[("Cookie", f"{S}={sessions.a}")]))
    assert raw.status == 200, raw.text[:300]
    assert len(sessions.stack.echo.requests) == 1
    assert sessions.stack.echo.requests[0].headers.getall("X-Auth-Ssn") != []


@pytest.mark.parametrize("case", CASE_NAMES)
async def test_browser_is_sent_to_the_login_with_the_cookie_cleared(sessions: Sessions, case: str) -> None:
    stack = sessions.stack
    before = await _metric(stack, "session")
    raw = await raw_http(stack.port, request_bytes("/private/x?q=1", headers=_cookie_headers(_cases(sessions)[case])))
    assert raw.status == 302, raw.text[:400]
    assert raw.header("Location") == "/_auth/login?rd=%2Fprivate%2Fx%3Fq%3D1"
    cleared = [line for line in raw.head.split("\r\n") if line.lower().startswith(f"set-cookie: {S}=")]
    assert len(cleared) == 1 and "Max-Age=0" in cleared[0] and "Path=/" in cleared[0], raw.head
    assert stack.echo.requests == []  # forwarded with neither identity
    assert await _metric(stack, "session") == before + 1


@pytest.mark.parametrize("case", CASE_NAMES)
async def test_api_client_gets_401(sessions: Sessions, case: str) -> None:
    stack = sessions.stack
    raw = await raw_http(stack.port, request_bytes("/private/x", accept="application/json",
                                                   headers=_cookie_headers(_cases(sessions)[case])))
    assert raw.status == 401, raw.text[:400]
    body = json.loads(raw.data.split(b"\r\n\r\n", 1)[1])
    assert body["error"] == "unauthenticated"
    assert stack.echo.requests == []


async def test_gateway_pages_treat_it_as_no_session(sessions: Sessions) -> None:
    both = f"{S}={sessions.a}; {S}={sessions.b}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        userinfo = await fetch(http, "GET", f"{sessions.stack.url}/_auth/userinfo", headers={**JSON, "Cookie": both})
        assert userinfo.status == 401
        assert "Åsa" not in userinfo.body and "ssn" not in userinfo.body
        # An ambiguous page view ends nothing: each cookie alone still works.
        for value in (sessions.a, sessions.b):
            alone = await fetch(http, "GET", f"{sessions.stack.url}/_auth/userinfo",
                                headers={**JSON, "Cookie": f"{S}={value}"})
            assert alone.status == 200


async def test_upstream_never_gets_a_gateway_cookie(sessions: Sessions) -> None:
    """What is stripped uses the same reader: every spelling and copy goes, the application's cookies pass."""
    lines = [f"theme=dark; {S}={sessions.a}; {S}=junk", f"__Secure-{S}=x; lang=sv; {S} ={sessions.b}",
             f"{LOGIN}=y; GW_SESSION_TX=z; app=1"]
    raw = await raw_http(sessions.stack.port, request_bytes("/public/x", headers=_cookie_headers(lines)))
    assert raw.status == 200
    seen = sessions.stack.echo.requests[-1].headers
    assert seen.getall("Cookie") == ["theme=dark; lang=sv; app=1"]


async def test_logout_with_two_sessions_ends_both(shared_op_stack: OpStack) -> None:
    """Logout authenticates nothing, so it may end every session the browser presented; leaving one running
    would let a logout be answered while a session survives it (attacks.md T39)."""
    stack = shared_op_stack
    a, b = await _session(stack), await _session(stack)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        out = await fetch(http, "POST", f"{stack.url}/_auth/logout",
                          headers={**HTML, "Origin": stack.url, "Cookie": f"{S}={a}; {S}={b}"})
        assert out.status == 303 and out.clears(S)
        for value in (a, b):
            after = await fetch(http, "GET", f"{stack.url}/_auth/userinfo", headers={**JSON, "Cookie": f"{S}={value}"})
            assert after.status == 401


# ------------------------------------------------------------------------------- cookie_domain variants


async def test_both_variants_are_cleared_with_a_cookie_domain() -> None:
    def sso(config: dict[str, Any]) -> None:
        config["public_url"] = "https://login.example.test"
        config["session"]["cookie_domain"] = "example.test"

    name = f"__Secure-{S}"  # https with a cookie_domain: __Secure- (Domain= is not allowed with __Host-)
    async with running_op_stack(customize=sso) as stack:
        raw = await raw_http(stack.port, request_bytes("/private/x", host="login.example.test",
                                                       headers=[("Cookie", f"{name}=one; {name}=two")]))
        assert raw.status == 302, raw.text[:400]
        cleared = [line for line in raw.head.split("\r\n") if line.lower().startswith(f"set-cookie: {name.lower()}=")]
        assert len(cleared) == 2, raw.head
        assert all("Max-Age=0" in line and "Secure" in line and "Path=/" in line for line in cleared)
        assert sorted("Domain=example.test" in line for line in cleared) == [False, True]
        assert stack.echo.requests == []


# ------------------------------------------------------------------------------- forward-auth


async def test_verify_refuses_an_ambiguous_session() -> None:
    def trust(config: dict[str, Any]) -> None:
        config["trusted_proxies"] = ["127.0.0.1/32"]

    async with running_op_stack(customize=trust) as stack:
        a, b = await _session(stack), await _session(stack)
        ask = [("X-Original-URL", f"{stack.url}/private/x"), ("X-Original-Method", "GET")]
        control = await raw_http(stack.port, request_bytes("/_auth/verify", accept="application/json",
                                                           headers=[*ask, ("Cookie", f"{S}={a}")]))
        assert control.status == 200 and control.header("X-Auth-Ssn"), control.head
        before = await _metric(stack, "session")
        for lines in ([f"{S}={a}; {S}={b}"], [f"{S}={a}", f"{S}={a}"], [f"{S}=junk; {S}={a}"]):
            raw = await raw_http(stack.port, request_bytes("/_auth/verify", accept="application/json",
                                                           headers=[*ask, *_cookie_headers(lines)]))
            assert raw.status == 401, (lines, raw.head)
            assert raw.header("X-Auth-Ssn") is None and raw.header("X-Auth-Assertion") is None
            assert raw.header("X-Auth-Login-Url")
            assert f"set-cookie: {S}=" in raw.head.lower()
        assert await _metric(stack, "session") == before + 3


# ------------------------------------------------------------------------------- login state on the callback


@pytest.mark.parametrize("order", ["same twice", "ours first", "ours second", "two lines"])
async def test_callback_with_the_login_cookie_twice_is_refused(op_stack: OpStack, order: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        other = (await begin_login(http, op_stack)).start.set_cookies[LOGIN].value  # another flow's cookie
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
    ours = flow.start.set_cookies[LOGIN].value
    lines = {
        "same twice": [f"{LOGIN}={ours}; {LOGIN}={ours}"],
        "ours first": [f"{LOGIN}={ours}; {LOGIN}={other}"],
        "ours second": [f"{LOGIN}={other}; {LOGIN}={ours}"],
        "two lines": [f"{LOGIN}={ours}", f"{LOGIN}={ours}"],
    }[order]
    target = flow.callback_url.removeprefix(op_stack.url)
    before = await _metric(op_stack, "login")
    refused = await raw_http(op_stack.port, request_bytes(target, headers=_cookie_headers(lines)))
    assert refused.status == 400, refused.text[:400]
    assert "state_mismatch" in refused.text
    assert f"set-cookie: {S}=" not in refused.head.lower()  # no session
    assert op_stack.op.token_requests == []  # refused before the code was used
    assert await _metric(op_stack, "login") == before + 1
    # The state was not spent by the refusal: the browser's own single cookie still completes the login.
    done = await raw_http(op_stack.port, request_bytes(target, headers=[("Cookie", f"{LOGIN}={ours}")]))
    assert done.status == 302, done.text[:400]
    assert f"set-cookie: {S}=" in done.head.lower()


# ------------------------------------------------------------------------------- poll binding


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def headless_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpStack]:
    key_file: Path = tmp_path_factory.mktemp("ambiguous-headless") / "client.pem"
    key_file.write_bytes(generate_ec_pem())
    async with running_op_stack(customize=headless_provider(key_file)) as stack:
        yield stack


async def test_poll_with_the_binding_cookie_twice_is_refused(headless_stack: OpStack) -> None:
    stack = headless_stack

    async def start() -> str:
        async with aiohttp.ClientSession(cookie_jar=jar()) as http:
            out = await fetch(http, "POST", stack.url + START, json={"provider": PROVIDER, "rd": "/x"},
                              headers={**JSON, "Origin": stack.url})
            assert out.status == 200 and out.sets(BINDING), out.body
            return out.set_cookies[BINDING].value

    ours, other = await start(), await start()
    before = await _metric(stack, "poll")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for cookie in (f"{BINDING}={ours}; {BINDING}={other}", f"{BINDING}={other}; {BINDING}={ours}",
                       f"{BINDING}={ours}; {BINDING}={ours}"):
            for path in (STATUS, "/_auth/headless/qr.svg"):
                out = await fetch(http, "GET", stack.url + path, headers={**JSON, "Cookie": cookie})
                assert out.status == 400, (path, out.status, out.body)
                assert json.loads(out.body)["error"] == "state_mismatch"
                assert out.clears(BINDING) and not out.sets(S)
            out = await fetch(http, "POST", stack.url + "/_auth/headless/cancel",
                              headers={**JSON, "Origin": stack.url, "Cookie": cookie})
            assert out.status == 400 and out.clears(BINDING)
        assert await _metric(stack, "poll") == before + 9
        # Neither transaction was touched: each binding alone still polls.
        for value in (ours, other):
            out = await fetch(http, "GET", stack.url + STATUS, headers={**JSON, "Cookie": f"{BINDING}={value}"})
            assert out.status == 200 and json.loads(out.body)["status"] == "pending", out.body
