"""attacks.md H/K with the Redis session store (``session.store: redis://...``): session fixation against a
server-side id (T37), back-channel logout tokens, for both stores (T39), Redis key injection and a Redis
outage (T40), and no Redis key, cookie or token in the logs with refresh tokens in use (T50).

A redis-server of our own runs on a free loopback port (``--save "" --appendonly no``) and is stopped
afterwards. Two gateway instances share it (``RedisPair``: A is where people log in, B is the "other
replica"); the OP is tests/support/fake_op.FakeOP, whose token endpoint answers what the test queues.
The shared-store contract itself (logout on the other replica, everywhere=1, state replay, encrypted
records, a Redis outage and recovery) is tests/store/'s; it is not repeated here.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from gateway.logs import JsonFormatter
from gateway.protocol import jws
from gateway.protocol.jws import b64url_decode, b64url_encode
from gateway.protocol.logout_token import BACKCHANNEL_LOGOUT_EVENT
from gateway.runtime import RUNTIME
from gateway.session.store import StoreUnavailableError
from tests.security.helpers import assert_no_traceback, raw_http, request_bytes
from tests.support.fake_op import (
    DROP,
    SSN,
    OpStack,
    Outcome,
    TokenReply,
    begin_login,
    fetch,
    finish_login,
    forge,
    jar,
    running_op_stack,
    wait_ready,
)
from tests.support.gateway import run_gateway
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer as SharedRedisServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

PREFIX = "eidgw:"  # the default session.store_prefix
COOKIE = "gw_session"
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}
#: Sessions that must refresh soon get this ``expires_in``: the refresh is due 1.5 s after the token answer
#: (a quarter of the life before it runs out), late enough for a positive control right after the login.
SHORT_EXPIRES_IN = 2
DUE_AFTER = 1.6


# ---------------------------------------------------------------------------------------------- redis-server


class RedisServer(SharedRedisServer):
    """The shared test redis-server, plus how many GETs it executed."""

    def get_calls(self) -> int:
        """How many GET commands Redis has executed (``INFO commandstats``)."""
        stats = self.client().info("commandstats")
        return int(stats.get("cmdstat_get", {}).get("calls", 0))


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def record_key(cookie: str) -> str:
    """The Redis key of a session cookie: prefix + "s:" + SHA-256(the 32-byte id half of the cookie)."""
    assert cookie.startswith("r1."), cookie
    raw = b64url_decode(cookie[3:])
    assert len(raw) == 64
    return PREFIX + "s:" + hashlib.sha256(raw[:32]).hexdigest()


# ---------------------------------------------------------------------------------------------- two instances


@dataclass
class RedisPair:
    """Gateway A (with the OP and the echo upstream of ``stack``) and gateway B, same config, one Redis."""

    stack: OpStack
    b_url: str
    redis: RedisServer

    @property
    def a_url(self) -> str:
        return self.stack.url

    def reset(self) -> RedisPair:
        self.stack.reset()
        return self


@asynccontextmanager
async def redis_pair(server: RedisServer, **op_options: Any) -> AsyncIterator[RedisPair]:
    def use_redis(config: dict[str, Any]) -> None:
        config["session"]["store"] = server.url

    async with running_op_stack(customize=use_redis, **op_options) as stack:
        config = copy.deepcopy(stack.config)
        port = free_port()
        config["listen"] = f"127.0.0.1:{port}"
        config["public_url"] = f"http://127.0.0.1:{port}"
        config["metrics"]["listen"] = f"127.0.0.1:{free_port()}"
        async with run_gateway(config) as b:
            await wait_ready(b.url)
            yield RedisPair(stack=stack, b_url=b.url, redis=server)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_pair(redis_server: RedisServer) -> AsyncIterator[RedisPair]:
    async with redis_pair(redis_server) as pair:
        yield pair


@pytest.fixture
def pair(shared_pair: RedisPair) -> RedisPair:
    return shared_pair.reset()


# ---------------------------------------------------------------------------------------------- logins and requests


def token_reply(stack: OpStack, nonce: str | None, *, access_token: str | None = None,
                refresh_token: str | None = None, expires_in: int = 300, key: str = "rsa",
                **claims: Any) -> TokenReply:
    """A token-endpoint answer with an ID token signed by ``key`` (nonce omitted when None)."""
    id_token = stack.op.sign(stack.op.claims(nonce, **claims) if nonce else stack.op.claims(None, nonce=DROP, **claims),
                             key)
    body: dict[str, Any] = {"id_token": id_token, "access_token": access_token or "at-" + secrets.token_urlsafe(8),
                            "token_type": "Bearer", "expires_in": expires_in}
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return TokenReply(body=body)


async def log_in(stack: OpStack, http: aiohttp.ClientSession | None = None, *, access_token: str | None = None,
                 refresh_token: str | None = None, expires_in: int = 300, **claims: Any) -> str:
    """A complete login through the fake OP with these ID-token claims; returns the session cookie value."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as own:
        browser = http or own
        flow = await begin_login(browser, stack, "/private/echo")
        stack.op.queue(lambda req: token_reply(stack, req.nonce, access_token=access_token,
                                               refresh_token=refresh_token, expires_in=expires_in, **claims))
        done = await finish_login(browser, flow)
        assert done.status == 302 and done.sets(COOKIE), (done.status, done.body[:300])
        return done.set_cookies[COOKIE].value


async def visit(base_url: str, cookie: str, *, accept: dict[str, str] = HTML, path: str = "/private/echo") -> Outcome:
    async with aiohttp.ClientSession() as http:
        return await fetch(http, "GET", f"{base_url}{path}", headers={"Cookie": f"{COOKIE}={cookie}", **accept})


async def assert_works(stack: OpStack, base_url: str, cookie: str, *, ssn: str = SSN, what: str = "") -> None:
    before = len(stack.echo.requests)
    answer = await visit(base_url, cookie, accept=JSON)
    assert answer.status == 200, f"{what}: {answer.status} {answer.body[:200]}"
    assert len(stack.echo.requests) == before + 1
    assert stack.echo.requests[-1].headers["X-Auth-Ssn"] == ssn


async def assert_ended(stack: OpStack, base_url: str, cookie: str, *, what: str = "") -> None:
    before = len(stack.echo.requests)
    browser = await visit(base_url, cookie, accept=HTML)
    api = await visit(base_url, cookie, accept=JSON)
    assert browser.status == 302 and (browser.location or "").startswith("/_auth/login?"), (what, browser.status)
    assert browser.clears(COOKIE), (what, browser.set_cookies)
    assert api.status == 401, (what, api.status, api.body[:200])
    assert len(stack.echo.requests) == before, f"{what}: a request was forwarded"


# ------------------------------------------------------------------------------------------------ T37


async def test_t37_redis_login_destroys_the_attackers_planted_session(pair: RedisPair) -> None:
    """T37 (Redis mode): the attacker plants their own valid session cookie in the victim's browser. Starting
    the login deletes that record (the attacker's copy stops working on every instance at once), and the
    victim gets a fresh cookie value with their own identity."""
    stack, store = pair.stack, pair.redis.client()
    planted = await log_in(stack, sub="attacker", ssn="196802020575", name="Eve Attacker")
    await assert_works(stack, pair.b_url, planted, ssn="196802020575", what="the attacker's session before")
    assert store.exists(record_key(planted))
    async with aiohttp.ClientSession(cookie_jar=jar()) as victim:
        victim.cookie_jar.update_cookies({COOKIE: planted}, URL(stack.url))
        flow = await begin_login(victim, stack, "/private/echo")
        assert flow.start.clears(COOKIE), flow.start.set_cookies
        # Destroyed at login start, before the victim has even come back from the OP.
        assert not store.exists(record_key(planted))
        await assert_ended(stack, pair.b_url, planted, what="the planted cookie after the victim's login start")
        stack.op.queue(lambda req: token_reply(stack, req.nonce, sub="victim"))
        done = await finish_login(victim, flow)
        assert done.sets(COOKIE), done.set_cookies
        fresh = done.set_cookies[COOKIE].value
        assert fresh.startswith("r1.") and fresh != planted
        assert record_key(fresh) != record_key(planted)
        assert store.exists(record_key(fresh))
        await assert_works(stack, pair.b_url, fresh, ssn=SSN, what="the victim's fresh session")
    await assert_ended(stack, pair.a_url, planted, what="the planted cookie after the victim's login")
    assert not store.exists(record_key(planted))


async def test_t37_redis_made_up_session_id_is_never_adopted(pair: RedisPair) -> None:
    """T37 (Redis mode): a well-formed ``r1.`` id the attacker made up (and so knows) is planted; the victim's
    login writes nothing under it: the victim gets another id, and the made-up value never becomes a session."""
    stack, store = pair.stack, pair.redis.client()
    made_up = "r1." + b64url_encode(secrets.token_bytes(64))
    async with aiohttp.ClientSession(cookie_jar=jar()) as victim:
        victim.cookie_jar.update_cookies({COOKIE: made_up}, URL(stack.url))
        flow = await begin_login(victim, stack, "/private/echo")
        assert flow.start.clears(COOKIE), flow.start.set_cookies
        stack.op.queue(lambda req: token_reply(stack, req.nonce, sub="victim"))
        done = await finish_login(victim, flow)
        assert done.sets(COOKIE)
        fresh = done.set_cookies[COOKIE].value
    assert fresh != made_up and record_key(fresh) != record_key(made_up)
    assert not store.exists(record_key(made_up))
    await assert_ended(stack, pair.a_url, made_up, what="the made-up id on A")
    await assert_ended(stack, pair.b_url, made_up, what="the made-up id on B")
    await assert_works(stack, pair.b_url, fresh, what="the victim's fresh session")


# ------------------------------------------------------------------------------------------------ T39


@dataclass
class Target:
    """Where a session is made (``stack``, gateway ``login_url``) and where it is checked afterwards."""

    store: str
    stack: OpStack
    other_url: str  # cookie store: the same process; Redis: the second instance
    redis: RedisServer | None = None


@pytest.fixture(params=["cookie", "redis"])
def target(request: pytest.FixtureRequest, op_stack: OpStack, pair: RedisPair) -> Target:
    if request.param == "cookie":
        return Target("cookie", op_stack, op_stack.url)
    return Target("redis", pair.stack, pair.b_url, pair.redis)


def logout_claims(stack: OpStack, *, sub: str | None, sid: str | None, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": stack.op.issuer, "aud": stack.op.client_id, "iat": now, "exp": now + 120,
        "jti": secrets.token_urlsafe(16), "events": {BACKCHANNEL_LOGOUT_EVENT: {}}, "sub": sub, "sid": sid,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not DROP and v is not None}


def logout_token(stack: OpStack, claims: dict[str, Any], key: str = "rsa") -> str:
    return jws.sign(claims, stack.op._pair(key).signing, typ="logout+jwt")


BAD_LOGOUT_TOKENS = {
    "without iat": {"iat": DROP},
    "without jti": {"jti": DROP},
    "without exp": {"exp": DROP},
    "with nonce": {"nonce": "n-0123456789"},
    "without events": {"events": DROP},
    "events without the back-channel member": {"events": {"http://schemas.openid.net/event/other": {}}},
    "without sub and sid": {"sub": DROP, "sid": DROP},
    "wrong aud": {"aud": "another-client"},
    "wrong iss": {"iss": "https://evil.example"},
    "too old (iat 20 minutes ago)": {"iat": int(time.time()) - 1200},
    "signed by a foreign key": {},
    "alg none": {},
}


def bad_logout_token(stack: OpStack, case: str, *, sub: str, sid: str) -> str:
    changes = {"sub": sub, "sid": sid, **BAD_LOGOUT_TOKENS[case]}
    claims = logout_claims(stack, **changes)
    if case.startswith("too old"):
        claims["iat"], claims["exp"] = int(time.time()) - 1200, int(time.time()) + 60
    if case == "signed by a foreign key":
        return logout_token(stack, claims, key="attacker_rsa")  # same kid as the OP's key, another key
    if case == "alg none":
        return forge({"alg": "none", "typ": "logout+jwt"}, claims)
    return logout_token(stack, claims)


async def post_logout_token(base_url: str, token: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(
        f"{base_url}/_auth/backchannel-logout/dev", data={"logout_token": token}, allow_redirects=False
    ) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text) if text else None
        except ValueError:
            return resp.status, text


@pytest.mark.parametrize("case", list(BAD_LOGOUT_TOKENS))
async def test_t39_invalid_logout_tokens_are_400_and_end_nothing(target: Target, case: str) -> None:
    """T39: a logout token without iat / jti / exp, with a nonce, without the back-channel events member, without
    sub and sid, for another audience or issuer, signed by a foreign key, with alg none, or 20 minutes old is
    refused with 400 {"error": "invalid_request"}, and the session it names keeps working (cookie store: the
    same process; Redis: on both instances)."""
    stack = target.stack
    sub, sid = f"bcl-{secrets.token_hex(4)}", f"op-sid-{secrets.token_hex(6)}"
    cookie = await log_in(stack, sub=sub, sid=sid)
    token = bad_logout_token(stack, case, sub=sub, sid=sid)
    for base_url in {stack.url, target.other_url}:
        status, body = await post_logout_token(base_url, token)
        assert status == 400, (case, status, body)
        assert isinstance(body, dict) and body.get("error") == "invalid_request", body
        assert_no_traceback(json.dumps(body))
    await assert_works(stack, stack.url, cookie, what=f"after a logout token {case}")
    await assert_works(stack, target.other_url, cookie, what=f"after a logout token {case}")
    if target.redis is not None:
        assert target.redis.client().exists(record_key(cookie))


async def test_t39_valid_logout_token_ends_the_session_everywhere_and_cannot_be_replayed(target: Target) -> None:
    """T39: a valid logout token (by sid) gets 200 and ends that session (Redis: on the other instance too, and
    the record is deleted); another person's session and the same person's session from another provider
    session survive; the same token again is a replay: 400 invalid_request, on either instance."""
    stack = target.stack
    sub, sid = f"bcl-{secrets.token_hex(4)}", f"op-sid-{secrets.token_hex(6)}"
    cookie = await log_in(stack, sub=sub, sid=sid)
    same_person_elsewhere = await log_in(stack, sub=sub, sid=f"op-sid-{secrets.token_hex(6)}")
    bystander = await log_in(stack, sub=f"other-{secrets.token_hex(4)}", sid=f"op-sid-{secrets.token_hex(6)}",
                             ssn="196802020575")
    await assert_works(stack, target.other_url, cookie, what="before the logout token")
    token = logout_token(stack, logout_claims(stack, sub=sub, sid=sid))
    status, body = await post_logout_token(stack.url, token)
    assert status == 200, (status, body)
    await assert_ended(stack, target.other_url, cookie, what="after the logout token, other instance")
    await assert_ended(stack, stack.url, cookie, what="after the logout token, receiving instance")
    if target.redis is not None:
        assert not target.redis.client().exists(record_key(cookie))
    await assert_works(stack, target.other_url, same_person_elsewhere, what="same person, other provider session")
    await assert_works(stack, target.other_url, bystander, ssn="196802020575", what="another person")
    for base_url in (stack.url, target.other_url):
        status, body = await post_logout_token(base_url, token)
        assert status == 400 and isinstance(body, dict) and body.get("error") == "invalid_request", (status, body)
    await assert_works(stack, target.other_url, bystander, ssn="196802020575", what="another person after a replay")


async def test_t39_logout_token_with_only_sub_ends_every_session_of_that_person(target: Target) -> None:
    """T39: a valid logout token with ``sub`` and no ``sid`` ends every session of that person at that provider
    (Redis: found through the person index, seen by the other instance), and no one else's."""
    stack = target.stack
    sub = f"bcl-{secrets.token_hex(4)}"
    first = await log_in(stack, sub=sub, sid=f"op-sid-{secrets.token_hex(6)}")
    second = await log_in(stack, sub=sub)
    bystander = await log_in(stack, sub=f"other-{secrets.token_hex(4)}", ssn="196802020575")
    status, body = await post_logout_token(stack.url, logout_token(stack, logout_claims(stack, sub=sub, sid=None)))
    assert status == 200, (status, body)
    await assert_ended(stack, target.other_url, first, what="first session of the person")
    await assert_ended(stack, target.other_url, second, what="second session of the person")
    await assert_works(stack, target.other_url, bystander, ssn="196802020575", what="another person")


async def test_t39_a_logout_the_store_failed_to_carry_out_still_works_when_the_provider_retries(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T39: the store fails while the sessions are being ended: 503 (the provider retries, §2.8), and the same
    token sent again ends them. The token's jti must not be spent by the attempt that did nothing."""
    stack = target.stack
    sub, sid = f"bcl-{secrets.token_hex(4)}", f"op-sid-{secrets.token_hex(6)}"
    cookie = await log_in(stack, sub=sub, sid=sid)
    store = stack.gateway.app[RUNTIME].store
    failures = iter([StoreUnavailableError("store_unavailable")])
    real_end = store.end_for_provider_session

    async def failing_once(provider: str, provider_sid: str, now: float) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return await real_end(provider, provider_sid, now)

    monkeypatch.setattr(store, "end_for_provider_session", failing_once)
    token = logout_token(stack, logout_claims(stack, sub=sub, sid=sid))
    status, _ = await post_logout_token(stack.url, token)
    assert status == 503
    await assert_works(stack, stack.url, cookie, what="after the failed attempt")
    status, body = await post_logout_token(stack.url, token)
    assert status == 200, (status, body)
    await assert_ended(stack, target.other_url, cookie, what="after the provider's retry")
    status, _ = await post_logout_token(stack.url, token)
    assert status == 400  # and now it is spent


# ------------------------------------------------------------------------------------------------ T40

JUNK = {
    "CRLF FLUSHALL percent-encoded": "r1.abc%0D%0AFLUSHALL%0D%0A",
    "CRLF FLUSHALL, redis protocol": "r1.%2A1%0D%0A%248%0D%0AFLUSHALL%0D%0A",
    "star": "r1.*",
    "bare star": "*",
    "format string": "r1.%s%s%n",
    "7 KB": "r1." + "A" * 7000,
    "dot dot slash": "r1.../x",
    "traversal to a key": "r1.../../eidgw:s:*",
    "non-base64url characters": "r1." + "+/=!" * 22,
    "base64 with padding": "r1." + b64url_encode(secrets.token_bytes(64)) + "==",
    "wrong length, 63 bytes": "r1." + b64url_encode(secrets.token_bytes(63)),
    "wrong length, 65 bytes": "r1." + b64url_encode(secrets.token_bytes(65)),
    "wrong length, id only": "r1." + b64url_encode(secrets.token_bytes(32)),
    "empty id": "r1.",
    "other version": "r2." + b64url_encode(secrets.token_bytes(64)),
    "key glob": "eidgw:s:*",
}


@pytest.mark.parametrize("client", ["browser", "api"])
@pytest.mark.parametrize("case", list(JUNK))
async def test_t40_junk_session_ids_never_reach_redis_and_are_refused(pair: RedisPair, case: str,
                                                                      client: str) -> None:
    """T40: session cookie values ``r1.`` + junk (CR/LF FLUSHALL percent-encoded, ``*``, ``%s%s%n``, 7 KB, ``../x``,
    non-base64url characters, base64url of the wrong length ...) get 302 to login (browser) or 401 (API) with a
    clearing Set-Cookie, never a 500, never a forward; no GET reaches Redis for them (the format is checked
    first), and Redis still holds the other sessions afterwards (no FLUSHALL effect)."""
    stack, store = pair.stack, pair.redis.client()
    other = await log_in(stack, sub="t40-bystander")
    keys_before = set(store.keys(PREFIX + "*"))
    assert record_key(other).encode() in keys_before
    gets_before = pair.redis.get_calls()
    stack.echo.requests.clear()
    accept = "text/html" if client == "browser" else "application/json"
    for port in (stack.port, int(pair.b_url.rsplit(":", 1)[1])):
        raw = await raw_http(port, request_bytes("/private/echo", accept=accept,
                                                 headers=[("Cookie", f"{COOKIE}={JUNK[case]}")]))
        assert raw.status == (302 if client == "browser" else 401), (case, raw.text[:300])
        if raw.status == 302:
            assert (raw.header("Location") or "").startswith("/_auth/login?")
        assert_no_traceback(raw.text)
        clearing = [line for line in raw.head.split("\r\n") if line.lower().startswith(f"set-cookie: {COOKIE}=")]
        assert clearing and all("Max-Age=0" in line or f'{COOKIE}=""' in line for line in clearing), (case, clearing)
    assert stack.echo.requests == []
    assert pair.redis.get_calls() == gets_before, "a malformed id reached Redis"
    assert store.dbsize() > 0
    assert keys_before <= set(store.keys(PREFIX + "*")), "keys disappeared from Redis"
    await assert_works(stack, pair.b_url, other, what="a bystander session after the junk")


async def test_t40_oversized_id_is_refused_by_the_parser(pair: RedisPair) -> None:
    """T40: a 10 KB session id is over aiohttp's 8190-byte header field limit: a 400/431 from the parser
    (as attacks.md T36), never a 500, never a forward; Redis is not asked and keeps its sessions."""
    stack, store = pair.stack, pair.redis.client()
    other = await log_in(stack, sub="t40-bystander")
    gets_before = pair.redis.get_calls()
    stack.echo.requests.clear()
    raw = await raw_http(stack.port, request_bytes("/private/echo",
                                                   headers=[("Cookie", f"{COOKIE}=r1." + "A" * 10240)]))
    assert raw.status in (400, 431), raw.text[:300]
    assert_no_traceback(raw.text)
    assert stack.echo.requests == []
    assert pair.redis.get_calls() == gets_before
    assert store.exists(record_key(other))
    await assert_works(stack, pair.b_url, other, what="a bystander session after a 10 KB id")


async def test_t40_unknown_well_formed_id_is_refused_and_writes_nothing(pair: RedisPair) -> None:
    """T40: a well-formed ``r1.`` value of the right length that Redis does not know (one read, ``not_found``) is
    302/401 with a clearing cookie, and leaves no key behind."""
    stack, store = pair.stack, pair.redis.client()
    unknown = "r1." + b64url_encode(secrets.token_bytes(64))
    keys_before = set(store.keys(PREFIX + "*"))
    await assert_ended(stack, stack.url, unknown, what="an unknown well-formed id")
    assert not store.exists(record_key(unknown))
    assert set(store.keys(PREFIX + "*")) <= keys_before


async def test_t40_redis_down_replayed_session_is_503_never_forwarded(tmp_path: Path) -> None:
    """T40: Redis stopped, a valid session replayed: 503 (an HTML page for a browser, JSON for an API), on every
    protected path and on /_auth/userinfo; never 200, never forwarded, never a redirect that drops the cookie.
    (The outage contract with readiness, metrics and recovery is tests/store/test_redis_faults.py.)"""
    with running_redis(tmp_path) as server:
        async with redis_pair(server) as own:
            stack = own.stack
            cookie = await log_in(stack, sub="t40-outage")
            await assert_works(stack, own.b_url, cookie, what="before the outage")
            server.stop()
            stack.echo.requests.clear()
            for base_url in (own.a_url, own.b_url):
                for path in ("/private/echo", "/private/other?x=1", "/_auth/userinfo"):
                    browser = await visit(base_url, cookie, accept=HTML, path=path)
                    api = await visit(base_url, cookie, accept=JSON, path=path)
                    assert browser.status == 503, (path, browser.status, browser.body[:200])
                    assert "text/html" in browser.headers.get("Content-Type", "")
                    assert api.status == 503, (path, api.status, api.body[:200])
                    assert json.loads(api.body)["error"] == "session_store_unavailable"
                    for answer in (browser, api):
                        assert_no_traceback(answer.body)
                        assert not answer.clears(COOKIE), "the cookie must be kept through an outage"
                        assert SSN not in answer.body
            assert stack.echo.requests == []


# ------------------------------------------------------------------------------------------------ T50


async def test_t50_redis_mode_logs_hold_no_key_cookie_or_token(pair: RedisPair,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """T50 (Redis store, refresh tokens, DEBUG level): a login, two refreshes (on A, then on B, rotating the
    refresh token), a refresh the provider fails (500), one it refuses (invalid_grant), a back-channel logout
    and a logout. No log line contains a Redis key (``eidgw:s:<hex>`` or any index key, or just their hex),
    the session cookie value, a session id or key, a refresh token, an access token or an ID token."""
    caplog.set_level(logging.DEBUG)
    stack, store = pair.stack, pair.redis.client()
    secrets_: dict[str, str] = {}

    def remember(label: str, value: str) -> None:
        secrets_[label] = value

    def remember_reply(label: str, reply: TokenReply) -> TokenReply:
        for name in ("id_token", "access_token", "refresh_token"):
            if name in reply.body:
                remember(f"{label} {name}", reply.body[name])
        remember(f"{label} id_token signature", reply.body["id_token"].rsplit(".", 1)[1])
        return reply

    def redis_keys() -> None:
        for key in store.keys(PREFIX + "*"):
            text = key.decode() if isinstance(key, bytes) else str(key)
            remember(f"redis key {text}", text)
            remember(f"hex of redis key {text}", text.rsplit(":", 1)[1])

    def cookie_parts(label: str, cookie: str) -> None:
        raw = b64url_decode(cookie[3:])
        remember(f"{label} cookie", cookie)
        remember(f"{label} cookie body", cookie[3:])
        remember(f"{label} id", b64url_encode(raw[:32]))
        remember(f"{label} id hex", raw[:32].hex())
        remember(f"{label} key", b64url_encode(raw[32:]))
        remember(f"{label} key hex", raw[32:].hex())
        remember(f"{label} record key", record_key(cookie))

    sub, sid = "t50-" + secrets.token_hex(4), "op-sid-" + secrets.token_hex(6)
    rt1, rt2, rt3 = ("RT-" + secrets.token_urlsafe(18) for _ in range(3))
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, stack, "/private/echo")
        remember("login cookie", flow.start.set_cookies["gw_session_login"].value)
        remember("code", flow.authorization.code)
        remember("state", flow.state)
        remember("nonce", flow.nonce)
        first = token_reply(stack, flow.nonce, access_token="AT-" + secrets.token_hex(9), refresh_token=rt1,
                            expires_in=SHORT_EXPIRES_IN, sub=sub, sid=sid)
        stack.op.queue(remember_reply("login", first))
        done = await finish_login(http, flow)
        assert done.sets(COOKIE)
        cookie = done.set_cookies[COOKIE].value
    cookie_parts("session", cookie)
    redis_keys()
    # First refresh on A (rt1 -> rt2, again due in under a second), second on B (rt2 -> rt3).
    await assert_works(stack, pair.a_url, cookie, what="before the refresh")
    await asyncio.sleep(DUE_AFTER)
    stack.op.queue(remember_reply("refresh 1", token_reply(stack, None, access_token="AT-" + secrets.token_hex(9),
                                                           refresh_token=rt2, expires_in=SHORT_EXPIRES_IN, sub=sub)))
    await assert_works(stack, pair.a_url, cookie, what="refresh on A")
    await asyncio.sleep(DUE_AFTER)
    stack.op.queue(remember_reply("refresh 2", token_reply(stack, None, access_token="AT-" + secrets.token_hex(9),
                                                           refresh_token=rt3, expires_in=300, sub=sub)))
    await assert_works(stack, pair.b_url, cookie, what="refresh on B")
    refreshes = [t.form for t in stack.op.token_requests if t.form.get("grant_type") == "refresh_token"]
    assert [f["refresh_token"] for f in refreshes] == [rt1, rt2], "refresh tokens were not rotated through Redis"
    redis_keys()

    # A second session whose refresh first fails (500) and then is refused (invalid_grant).
    rt4 = "RT-" + secrets.token_urlsafe(18)
    second = await log_in(stack, sub=sub, refresh_token=rt4, expires_in=SHORT_EXPIRES_IN)
    cookie_parts("second", second)
    remember("second refresh token", rt4)
    redis_keys()
    await asyncio.sleep(DUE_AFTER)
    stack.op.queue_error(500, {"error": "server_error", "error_description": rt4})
    assert (await visit(pair.a_url, second, accept=JSON)).status == 502
    stack.op.queue_error(400, {"error": "invalid_grant"})
    assert (await visit(pair.b_url, second, accept=JSON)).status == 401

    # Back-channel logout by sid, then an ordinary logout of a third session.
    logout = logout_token(stack, logout_claims(stack, sub=sub, sid=sid))
    remember("logout token", logout)
    assert (await post_logout_token(pair.b_url, logout))[0] == 200
    third = await log_in(stack, sub=sub)
    cookie_parts("third", third)
    redis_keys()
    async with aiohttp.ClientSession() as http:
        out = await fetch(http, "POST", f"{pair.a_url}/_auth/logout", headers={"Cookie": f"{COOKIE}={third}"})
    assert out.status == 303

    records = list(caplog.records)
    events = {r.getMessage() for r in records}
    assert {"login_completed", "refresh_failed", "session_ended", "backchannel_logout", "logout"} <= events, events
    formatter = JsonFormatter()
    for record in records:
        line = formatter.format(record)
        assert "\n" not in line and "\r" not in line, line
        blob = " ".join([line, record.getMessage(), repr(getattr(record, "fields", "")), record.exc_text or ""])
        for label, value in secrets_.items():
            assert value not in blob, f"{label} appears in log event {record.getMessage()!r}: {line[:300]}"
