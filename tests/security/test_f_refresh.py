"""attacks.md T28 on the refresh path (``refresh_tokens: true``, the default): a refresh answer whose ID token
names another person (``sub`` changed, OIDC Core §12.2) or fails any other check ends the session; a token
endpoint that fails (500) or cannot be reached fails the request with a 502 page, forwards nothing and keeps
the session, which refreshes and works once the provider is back.

Every test runs with the cookie store (one process) and the Redis store (a redis-server of our own, two
gateway instances sharing it; the session is checked on the second one too). The fake OP's token endpoint
answers the ``grant_type=refresh_token`` requests with the replies the test queues (``TokenReply``), so
sessions are given an ``expires_in`` of 2 s at login: their refresh is due 1.5 s later.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.security.helpers import assert_no_traceback
from tests.security.test_h_redis import (
    COOKIE,
    DUE_AFTER,
    HTML,
    JSON,
    SHORT_EXPIRES_IN,
    RedisPair,
    RedisServer,
    assert_ended,
    assert_works,
    log_in,
    record_key,
    redis_pair,
    running_redis,
    token_reply,
    visit,
)
from tests.support.fake_op import SSN, OpStack, TokenReply, forge

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_pair(redis_server: RedisServer) -> AsyncIterator[RedisPair]:
    async with redis_pair(redis_server) as pair:
        yield pair


@dataclass
class Target:
    store: str
    stack: OpStack
    other_url: str  # cookie store: the same process; Redis: the second instance
    redis: RedisServer | None = None

    def record_exists(self, cookie: str) -> bool | None:
        return None if self.redis is None else bool(self.redis.client().exists(record_key(cookie)))


@pytest.fixture(params=["cookie", "redis"])
def target(request: pytest.FixtureRequest, op_stack: OpStack, shared_pair: RedisPair) -> Target:
    if request.param == "cookie":
        return Target("cookie", op_stack, op_stack.url)
    shared_pair.reset()
    return Target("redis", shared_pair.stack, shared_pair.b_url, shared_pair.redis)


async def session_due_for_refresh(target: Target, sub: str) -> tuple[str, str]:
    """A fresh session whose refresh is due now; returns (cookie, refresh token)."""
    refresh_token = "RT-" + secrets.token_urlsafe(16)
    cookie = await log_in(target.stack, sub=sub, refresh_token=refresh_token, expires_in=SHORT_EXPIRES_IN)
    await assert_works(target.stack, target.stack.url, cookie, what="right after the login")
    await asyncio.sleep(DUE_AFTER)
    return cookie, refresh_token


def refresh_requests(stack: OpStack) -> list[dict[str, str]]:
    return [t.form for t in stack.op.token_requests if t.form.get("grant_type") == "refresh_token"]


def bad_refresh_reply(stack: OpStack, case: str, sub: str) -> TokenReply:
    now = int(time.time())
    if case == "invalid_grant":
        return TokenReply(status=400, body={"error": "invalid_grant"})
    if case == "alg none":
        claims = stack.op.claims(None, nonce=None, sub=sub)
        claims.pop("nonce")
        return TokenReply(body={"id_token": forge({"alg": "none", "typ": "JWT"}, claims), "access_token": "at-x",
                                "token_type": "Bearer", "expires_in": 300, "refresh_token": "RT-next"})
    changes: dict[str, dict[str, Any]] = {
        "sub changed": {"sub": "someone-else"},
        "signed by a foreign key": {"sub": sub, "key": "attacker_rsa"},
        "other audience": {"sub": sub, "aud": "another-client"},
        "other issuer": {"sub": sub, "iss": "https://evil.example"},
        "expired": {"sub": sub, "iat": now - 900, "exp": now - 600},
    }
    return token_reply(stack, None, refresh_token="RT-next", **changes[case])


BAD_REFRESHES = ["sub changed", "signed by a foreign key", "alg none", "other audience", "other issuer", "expired",
                 "invalid_grant"]


@pytest.mark.parametrize("case", BAD_REFRESHES)
async def test_t28_refresh_that_changes_or_breaks_the_identity_ends_the_session(target: Target, case: str) -> None:
    """T28 "sub changed on refresh": a refresh answer whose ID token has another ``sub`` ends the session: the
    request that triggered the refresh gets 302 to login / 401 with a clearing cookie and is not forwarded,
    and so does every later one (Redis: on the other instance too, and the record is deleted). The same for an
    ID token signed by a foreign key, with alg none, for another audience or issuer, expired, and for an
    ``invalid_grant`` answer."""
    stack = target.stack
    sub = "rf-" + secrets.token_hex(4)
    cookie, refresh_token = await session_due_for_refresh(target, sub)
    stack.op.queue(bad_refresh_reply(stack, case, sub))
    before = len(stack.echo.requests)
    triggered = await visit(stack.url, cookie, accept=HTML)
    assert triggered.status == 302 and (triggered.location or "").startswith("/_auth/login?"), (
        case, triggered.status, triggered.body[:200])
    assert triggered.clears(COOKIE), triggered.set_cookies
    assert len(stack.echo.requests) == before, "the request that triggered the refused refresh was forwarded"
    assert [f["refresh_token"] for f in refresh_requests(stack)] == [refresh_token]
    assert stack.op.pending_replies == 0
    await assert_ended(stack, target.other_url, cookie, what=f"refresh answer {case}, later request")
    await assert_ended(stack, stack.url, cookie, what=f"refresh answer {case}, later request on the same instance")
    assert target.record_exists(cookie) in (None, False)
    assert len(refresh_requests(stack)) == 1, "an ended session asked the provider again"


async def _assert_502_kept(target: Target, cookie: str, what: str) -> None:
    stack = target.stack
    before = len(stack.echo.requests)
    for accept in (HTML, JSON):
        answer = await visit(stack.url, cookie, accept=accept)
        assert answer.status == 502, (what, answer.status, answer.body[:200])
        assert not answer.clears(COOKIE), f"{what}: the session cookie was cleared"
        assert_no_traceback(answer.body)
        assert SSN not in answer.body
        if accept is HTML:
            assert "text/html" in answer.headers.get("Content-Type", ""), answer.headers
        else:
            assert '"idp_unavailable"' in answer.body, answer.body[:200]
    assert len(stack.echo.requests) == before, f"{what}: a request was forwarded"
    assert target.record_exists(cookie) in (None, True), f"{what}: the Redis record was deleted"


async def _assert_recovers(target: Target, cookie: str, sub: str, refresh_token: str) -> None:
    stack = target.stack
    stack.op.queue(token_reply(stack, None, refresh_token="RT-" + secrets.token_urlsafe(16), expires_in=300, sub=sub))
    await assert_works(stack, stack.url, cookie, what="after the provider recovered")
    await assert_works(stack, target.other_url, cookie, what="after the provider recovered, other instance")
    sent = [f["refresh_token"] for f in refresh_requests(stack)]
    assert sent and set(sent) == {refresh_token}, "the session lost or changed its refresh token while failing"


async def test_t28_refresh_endpoint_500_is_a_502_and_keeps_the_session(target: Target) -> None:
    """T28 (refresh, provider failing): the token endpoint answers 500 to the refresh: the request gets a 502
    page (HTML for a browser, JSON for an API), is not forwarded, and the session is kept (cookie not cleared,
    Redis record still there); once the endpoint answers again the same cookie refreshes and works."""
    sub = "rf-" + secrets.token_hex(4)
    cookie, refresh_token = await session_due_for_refresh(target, sub)
    target.stack.op.queue_error(500, {"error": "server_error"})
    target.stack.op.queue_error(503, "<html>maintenance</html>")
    await _assert_502_kept(target, cookie, "token endpoint 500")
    assert len(refresh_requests(target.stack)) == 2
    await _assert_recovers(target, cookie, sub, refresh_token)


async def test_t28_refresh_endpoint_unreachable_is_a_502_and_keeps_the_session(target: Target) -> None:
    """T28 (refresh, provider down): the OP is stopped (connection refused) when the refresh is due: 502 page,
    not forwarded, session kept; the OP is started again on the same port and the same cookie refreshes and
    works."""
    stack = target.stack
    sub = "rf-" + secrets.token_hex(4)
    cookie, refresh_token = await session_due_for_refresh(target, sub)
    await stack.op.__aexit__(None, None, None)
    try:
        await _assert_502_kept(target, cookie, "token endpoint unreachable")
    finally:
        await stack.op.__aenter__()
    assert refresh_requests(stack) == []
    await _assert_recovers(target, cookie, sub, refresh_token)
