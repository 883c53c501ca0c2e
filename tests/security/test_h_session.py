"""attacks.md H: session cookies (T35 tampered/foreign/stale, T36 oversized, T37 fixation, T39 logout replay)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from gateway.session.codec import Keyring
from tests.security.helpers import assert_no_traceback, raw_http, request_bytes
from tests.support.fake_op import OpStack, Outcome, begin_login, fetch, finish_login, jar, login, running_op_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

SVEN = {"sub": "u-sven", "ssn": "196802020575", "name": "Sven Svensson", "country": "SE"}


async def logged_in_cookie(stack: OpStack, **claims: Any) -> str:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        outcome = await login(http, stack, **claims)
        assert outcome.sets("gw_session")
        return outcome.set_cookies["gw_session"].value


def session_payload(identity: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    now = time.time()
    payload: dict[str, Any] = {
        "sid": "attacker-chosen-sid", "id": identity or {"sub": "u1", "idp": "dev", "ssn": "199003152387"},
        "c": now, "l": now, "x": now + 3600, "i": 3600, "exp": now + 3600,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def _flip(value: str, index: int) -> str:
    ch = value[index]
    return value[:index] + ("A" if ch != "A" else "B") + value[index + 1:]


def tampered_cookies(stack: OpStack, valid: str, login_cookie: str) -> dict[str, str]:
    secret = stack.config["session"]["secret"]
    own = Keyring([secret])
    foreign = Keyring(["another-deployment-secret-0123456789abcdef"])
    now = time.time()
    return {
        "flip near start": _flip(valid, 5),
        "flip in nonce": _flip(valid, 12),
        "flip in middle": _flip(valid, len(valid) // 2),
        "flip last": _flip(valid, -1),
        "truncated half": valid[: len(valid) // 2],
        "truncated by one": valid[:-1],
        "AAAA": "AAAA",
        "equals": "=",
        "prefix only": "v1.",
        "zeros": "v1." + "A" * 200,
        "other version": "v2." + valid[3:],
        "no prefix": valid[3:],
        "doubled": valid + valid,
        "too long": valid + "A" * 5000,
        "non base64": "v1." + "!" * 60,
        "quoted": f'"{valid[:-1]}"',
        "other deployment key": foreign.seal(session_payload(), purpose="session"),
        "login cookie as session": login_cookie,
        "login purpose with session payload": own.seal(session_payload(), purpose="login"),
        "sealed exp in the past": own.seal(session_payload(exp=now - 10), purpose="session"),
        "absolute expiry passed": own.seal(session_payload(x=now - 10), purpose="session"),
        "idle timeout passed": own.seal(session_payload(l=now - 7200), purpose="session"),
        "identity without sub": own.seal(session_payload({"idp": "dev", "ssn": "199003152387"}), purpose="session"),
        "identity with unknown claim": own.seal(session_payload({"sub": "u1", "idp": "dev", "admin": "1"}),
                                                purpose="session"),
        "identity not strings": own.seal(session_payload({"sub": "u1", "idp": "dev", "ssn": 1}), purpose="session"),  # type: ignore[dict-item]
        "numbers as strings": own.seal(session_payload(x=str(now + 3600)), purpose="session"),
        "exp boolean": own.seal(session_payload(exp=True), purpose="session"),
        "payload a list": own.seal({"exp": now + 3600, "sid": ["x"]}, purpose="session"),
        "missing sid": own.seal(session_payload(sid=None), purpose="session"),
    }


CASES = [
    "flip near start", "flip in nonce", "flip in middle", "flip last", "truncated half", "truncated by one", "AAAA",
    "equals", "prefix only", "zeros", "other version", "no prefix", "doubled", "too long", "non base64", "quoted",
    "other deployment key", "login cookie as session", "login purpose with session payload", "sealed exp in the past",
    "absolute expiry passed", "idle timeout passed", "identity without sub", "identity with unknown claim",
    "identity not strings", "numbers as strings", "exp boolean", "payload a list", "missing sid",
]


async def _fresh_cookies(stack: OpStack) -> tuple[str, str]:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, stack)
        login_cookie = flow.start.set_cookies["gw_session_login"].value
        outcome = await finish_login(http, flow)
    return outcome.set_cookies["gw_session"].value, login_cookie


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("client", ["browser", "api"])
async def test_t35_tampered_or_stale_cookies_are_refused_and_cleared(op_stack: OpStack, case: str,
                                                                     client: str) -> None:
    valid, login_cookie = await _fresh_cookies(op_stack)
    value = tampered_cookies(op_stack, valid, login_cookie)[case]
    op_stack.echo.requests.clear()
    accept = "text/html" if client == "browser" else "application/json"
    raw = await raw_http(op_stack.port, request_bytes("/private/echo", accept=accept,
                                                      headers=[("Cookie", f"gw_session={value}")]))
    assert raw.status in ((302,) if client == "browser" else (401,)), raw.text[:400]
    if raw.status == 302:
        assert (raw.header("Location") or "").startswith("/_auth/login?")
    assert_no_traceback(raw.text)
    assert op_stack.echo.requests == []
    clearing = [line for line in raw.head.split("\r\n") if line.lower().startswith("set-cookie: gw_session=")]
    assert clearing, f"no clearing Set-Cookie for {case}"
    assert all("Max-Age=0" in line or 'gw_session=""' in line for line in clearing), clearing


async def test_t35_same_identity_sealed_twice_gives_different_cookies(op_stack: OpStack) -> None:
    first = await logged_in_cookie(op_stack)
    second = await logged_in_cookie(op_stack)
    assert first != second
    assert first[3:25] != second[3:25]  # key id || nonce: the nonce is random


async def test_t35_valid_cookie_still_works_after_all_that(op_stack: OpStack) -> None:
    valid = await logged_in_cookie(op_stack)
    async with aiohttp.ClientSession() as http:
        answer = await fetch(http, "GET", f"{op_stack.url}/private/echo", headers={"Cookie": f"gw_session={valid}"})
    assert answer.status == 200
    seen = op_stack.echo.requests[-1]
    assert seen.headers["X-Auth-Ssn"] == "199003152387"
    assert "gw_session" not in seen.headers.get("Cookie", "")


async def test_t35_key_rotation_reads_old_cookies_and_seals_with_the_new_key() -> None:
    old_secret = "old-secret-0123456789abcdefghijklmnopqrstuvwxyz"

    def rotate(config: dict[str, Any]) -> None:
        config["session"]["previous_secrets"] = [old_secret]

    async with running_op_stack(customize=rotate) as stack, aiohttp.ClientSession() as http:
        old_cookie = Keyring([old_secret]).seal(session_payload(), purpose="session")
        answer = await fetch(http, "GET", f"{stack.url}/private/echo", headers={"Cookie": f"gw_session={old_cookie}"})
        assert answer.status == 200
        fresh = await logged_in_cookie(stack)
        new_only = Keyring([stack.config["session"]["secret"]])
        assert new_only.unseal(fresh, purpose="session", now=time.time())["sid"]
        retired = Keyring(["yet-another-secret-0123456789abcdefghijkl"]).seal(session_payload(), purpose="session")
        refused = await fetch(http, "GET", f"{stack.url}/private/echo", headers={"Cookie": f"gw_session={retired}"})
        assert refused.status == 401 and refused.clears("gw_session")


# ------------------------------------------------------------------------------------------------ T36

OVERSIZED = {
    "64 KiB cookie header": [("Cookie", "a=" + "x" * 65536)],
    "one 8 KiB cookie value": [("Cookie", "gw_session=" + "A" * 8192)],
    "8 KiB of other cookies": [("Cookie", "; ".join(f"c{i}={'x' * 100}" for i in range(80)))],
    "200 cookie headers": [("Cookie", f"c{i}=x") for i in range(200)],
}


@pytest.mark.parametrize("case", sorted(OVERSIZED))
async def test_t36_oversized_cookie_headers_are_refused_and_the_server_stays_healthy(op_stack: OpStack,
                                                                                      case: str) -> None:
    started = time.perf_counter()
    raw = await raw_http(op_stack.port, request_bytes("/private/x", headers=OVERSIZED[case]))
    assert time.perf_counter() - started < 2.0
    assert raw.status in (400, 431), raw.text[:300]
    assert_no_traceback(raw.text)
    assert op_stack.echo.requests == []
    async with aiohttp.ClientSession() as http:
        health = await fetch(http, "GET", f"{op_stack.url}/_auth/healthz")
    assert health.status == 200


NUMEROUS = {
    "300 cookies": [("Cookie", "; ".join(f"c{i}=v" for i in range(300)))],
    "chunk cookies with a huge count": [("Cookie", "gw_session_chunks=1000000; "
                                         + "; ".join(f"gw_session_{i}=AAAA" for i in range(100)))],
    "7 KiB session value": [("Cookie", "gw_session=v1." + "A" * 7000)],
    "session cookie twice": [("Cookie", "gw_session=AAAA; gw_session=BBBB")],
    "50 cookie headers": [("Cookie", f"c{i}=x") for i in range(50)],
    "120 cookie headers of 100 bytes": [("Cookie", f"c{i}={'x' * 100}") for i in range(120)],
}


@pytest.mark.parametrize("case", sorted(NUMEROUS))
async def test_t36_numerous_cookies_mean_a_normal_login_redirect(op_stack: OpStack, case: str) -> None:
    raw = await raw_http(op_stack.port, request_bytes("/private/x", headers=NUMEROUS[case]))
    assert raw.status == 302, raw.text[:300]
    assert_no_traceback(raw.text)
    assert op_stack.echo.requests == []


# ------------------------------------------------------------------------------------------------ T37


async def test_t37_login_drops_a_planted_session_and_issues_a_fresh_one(op_stack: OpStack) -> None:
    planted = await logged_in_cookie(op_stack, **SVEN)  # the attacker's own valid session
    async with aiohttp.ClientSession(cookie_jar=jar()) as victim:
        from yarl import URL

        victim.cookie_jar.update_cookies({"gw_session": planted}, URL(op_stack.url))
        flow = await begin_login(victim, op_stack)
        assert flow.start.clears("gw_session"), flow.start.set_cookies
        outcome = await finish_login(victim, flow)
        assert outcome.sets("gw_session")
        fresh = outcome.set_cookies["gw_session"]
        assert fresh.value != planted
        assert fresh["httponly"] and fresh["samesite"] == "Lax" and fresh["path"] == "/"
        op_stack.echo.requests.clear()
        assert (await fetch(victim, "GET", f"{op_stack.url}/private/echo")).status == 200
    seen = op_stack.echo.requests[-1]
    assert seen.headers["X-Auth-Ssn"] == "199003152387"  # the victim's own identity, not the attacker's


async def test_t37_https_deployment_uses_host_prefixed_secure_cookies() -> None:
    def https(config: dict[str, Any]) -> None:
        config["public_url"] = "https://app.example.test"

    async with running_op_stack(customize=https) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        start = await fetch(http, "GET", f"{stack.url}/_auth/login?rd=/private/x")
        assert start.status == 302 and start.location
        login_cookie = start.set_cookies["__Host-gw_session_login"]
        assert login_cookie["secure"] and login_cookie["path"] == "/" and not login_cookie["domain"]
        assert "redirect_uri=https%3A%2F%2Fapp.example.test%2F_auth%2Fcallback%2Fdev" in start.location
        authorize = await fetch(http, "GET", start.location)
        assert authorize.location is not None and authorize.location.startswith("https://app.example.test/")
        callback = stack.url + authorize.location[len("https://app.example.test"):]
        done = await fetch(http, "GET", callback,
                           headers={"Cookie": f"__Host-gw_session_login={login_cookie.value}"})
        assert done.status == 302, done.body[:300]
        session = done.set_cookies["__Host-gw_session"]
        assert session.value and session["secure"] and session["httponly"]
        assert session["path"] == "/" and not session["domain"] and session["samesite"] == "Lax"
        assert "gw_session" not in done.set_cookies  # no unprefixed twin
        answer = await fetch(http, "GET", f"{stack.url}/private/echo",
                             headers={"Cookie": f"__Host-gw_session={session.value}; gw_session=x; other=1"})
        assert answer.status == 200
        seen = stack.echo.requests[-1]
        assert session.value not in seen.headers.get("Cookie", "")
        # a plain gw_session cookie is not the gateway's on https: it may pass, but it is never a session
        unprefixed = await fetch(http, "GET", f"{stack.url}/private/echo",
                                 headers={"Cookie": f"gw_session={session.value}", "Accept": "application/json"})
        assert unprefixed.status == 401


# ------------------------------------------------------------------------------------------------ T39


async def test_t39_logout_invalidates_the_cookie_and_its_copies(op_stack: OpStack) -> None:
    other = await logged_in_cookie(op_stack)  # an unrelated session must survive
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        captured = {c.key: c.value for c in http.cookie_jar}["gw_session"]
        done = await fetch(http, "POST", f"{op_stack.url}/_auth/logout")
        assert done.status == 303 and done.clears("gw_session")
    op_stack.echo.requests.clear()
    async with aiohttp.ClientSession() as replay:
        browser = await fetch(replay, "GET", f"{op_stack.url}/private/echo",
                              headers={"Cookie": f"gw_session={captured}", "Accept": "text/html"})
        api = await fetch(replay, "GET", f"{op_stack.url}/private/echo", headers={"Cookie": f"gw_session={captured}"})
        info = await fetch(replay, "GET", f"{op_stack.url}/_auth/userinfo",
                           headers={"Cookie": f"gw_session={captured}"})
        again = await fetch(replay, "POST", f"{op_stack.url}/_auth/logout",
                            headers={"Cookie": f"gw_session={captured}"})
        survivor = await fetch(replay, "GET", f"{op_stack.url}/private/echo", headers={"Cookie": f"gw_session={other}"})
    assert browser.status == 302 and (browser.location or "").startswith("/_auth/login?")
    assert browser.clears("gw_session")
    assert api.status == 401
    assert info.status == 401
    assert again.status == 303 and again.location == "/_auth/logged-out"
    assert survivor.status == 200
    assert [r.path for r in op_stack.echo.requests] == ["/private/echo"]
    assert op_stack.echo.requests[0].headers["X-Auth-Ssn"] == "199003152387"


async def test_t39_logout_page_and_logout_with_a_broken_cookie_do_not_fail(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession() as http:
        for cookie in ("gw_session=AAAA", "gw_session=", "gw_session=v1." + "A" * 100):
            page: Outcome = await fetch(http, "GET", f"{op_stack.url}/_auth/logout", headers={"Cookie": cookie})
            done = await fetch(http, "POST", f"{op_stack.url}/_auth/logout", headers={"Cookie": cookie})
            assert page.status == 200 and done.status == 303
            assert_no_traceback(page.body)
