"""The session store contract, run against both stores with two real gateway replicas (separate
``eid-gateway run`` processes, the same config file except their listen and metrics ports) in front of one
echo upstream, logging in through the development IdP. For Redis both replicas share one redis-server.

What differs between the stores is what the cookie store cannot know: it keeps nothing outside the cookie
and the memory of the process that saw a logout (gateway/session/store.py), so logout, "log out
everywhere" and a spent OIDC state are remembered only by the replica that received them. Those tests
assert exactly that documented limitation for the cookie store, and the shared behaviour for Redis.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import pytest

from tests.store.support import (
    ASA,
    HTML,
    IDLE_TIMEOUT,
    KARI,
    LIFETIME,
    LOGIN_COOKIE,
    SVEN,
    Browser,
    Replicas,
    jar_session,
    login,
    login_until_callback,
    metrics,
    record_key,
    request,
    sample,
    total,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def logout(pair: Replicas, browser: Browser, *, everywhere: bool = False) -> None:
    path = "/_auth/logout" + ("?everywhere=1" if everywhere else "")
    answer = await request(
        pair.a.url, path, cookie=browser.cookie, method="POST", headers={**HTML, "Origin": pair.public_url}
    )
    assert answer.status == 303, f"{answer.status}: {answer.text}"
    assert answer.set_cookie == "", "the logout must clear the session cookie"


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()))


async def test_session_made_on_replica_a_works_on_replica_b(pair: Replicas) -> None:
    browser = await login(pair, ASA)
    for gw in (pair.b, pair.a, pair.b):
        assert await browser.works(gw.url, "/api/cross")
    userinfo = await request(pair.b.url, "/_auth/userinfo", cookie=browser.cookie)
    assert userinfo.status == 200, userinfo.text
    assert userinfo.json()["ssn"] == ASA.ssn
    # Without the cookie replica B does not know anyone.
    anonymous = await request(pair.b.url, "/api/cross")
    assert anonymous.status == 401
    for gw in pair.both:
        healthz, readyz = await request(gw.url, "/_auth/healthz"), await request(gw.url, "/_auth/readyz")
        assert healthz.status == 200 and healthz.json() == {"status": "ok", "session_store": "up"}, healthz.text
        assert readyz.status == 200 and readyz.json()["session_store"] == "up", readyz.text
        text = await metrics(gw)
        assert sample(text, "gateway_session_store_up") == 1
        if pair.store == "redis":  # every replica read the shared record
            assert sample(text, "gateway_session_store_operations_total", operation="read", result="ok") > 0
        assert total(text, "gateway_session_store_operations_total", result="error") == 0


async def test_idle_expiry_slides_and_absolute_lifetime_caps(pair: Replicas) -> None:
    """Two sessions, one request a second each, alternating replicas. ``idle`` stops after 4 s (past the
    3 s idle timeout, so sliding kept it alive) and is refused after a 4 s pause, while ``busy``, logged in
    at the same time and never idle, still works: the idle timeout ended ``idle``, not the lifetime. ``busy``
    keeps going and is refused at its 10 s lifetime despite the activity."""
    started = time.time()
    idle = await login(pair, ASA)
    busy = await login(pair, SVEN)
    logged_in = time.time()
    replicas = [pair.a.url, pair.b.url]
    for second in range(1, 5):
        await sleep_until(logged_in + second)
        for browser in (idle, busy):
            assert await browser.works(replicas[second % 2]), f"refused {second}s after login"
    assert time.time() - started > IDLE_TIMEOUT
    for second in range(5, 9):
        await sleep_until(logged_in + second)
        assert await busy.works(replicas[second % 2])
    # 4 s without a request: longer than the idle timeout, well before the lifetime.
    assert time.time() - logged_in < LIFETIME - 1.5
    assert not await idle.works(pair.a.url)
    assert not await idle.works(pair.b.url)

    refused_at = None
    second = 9
    while refused_at is None and second < LIFETIME + 3:
        await sleep_until(logged_in + second)
        if await busy.works(replicas[second % 2]):
            assert time.time() < logged_in + LIFETIME, "used past its absolute lifetime"
        else:
            refused_at = time.time()
        second += 1
    assert refused_at is not None, "still accepted past the lifetime"
    assert refused_at >= started + LIFETIME, f"refused {refused_at - started:.2f}s after login, before the lifetime"
    for url in replicas:
        assert not await busy.works(url)


async def test_logout_ends_a_copied_cookie(pair: Replicas) -> None:
    """Logout through replica A; a copy of the cookie (taken before) is then tried on both replicas.

    Redis: the record is deleted before the answer, so the copy is refused at once everywhere.
    Cookie store (documented limitation): only replica A, which received the logout, refuses the copy;
    replica B cannot know of it and still accepts the copy until it expires."""
    browser = await login(pair, ASA)
    copied = browser.copy()
    assert await copied.works(pair.b.url)
    ended_before = sample(await metrics(pair.a), "gateway_sessions_ended_total", cause="logout")
    if pair.redis is not None:
        assert pair.redis.client().exists(record_key(browser.cookie)) == 1

    await logout(pair, browser)

    assert not await copied.works(pair.a.url)
    if pair.store == "redis":
        assert pair.redis is not None and pair.redis.client().exists(record_key(browser.cookie)) == 0
        assert not await copied.works(pair.b.url)
    else:
        assert await copied.works(pair.b.url), "the cookie store keeps no shared state: B still accepts it"
        assert not await copied.works(pair.a.url)
    assert sample(await metrics(pair.a), "gateway_sessions_ended_total", cause="logout") == ended_before + 1


async def test_logout_everywhere_ends_every_session_of_that_person_only(pair: Replicas) -> None:
    """``POST /_auth/logout?everywhere=1`` on replica A from one of two sessions of the same person.

    Redis: the other session is refused on both replicas. Cookie store (documented limitation): it is
    refused on replica A only. Another person's session keeps working on both replicas either way."""
    first = await login(pair, KARI)
    second = await login(pair, KARI)
    other = await login(pair, SVEN)
    for browser in (first, second, other):
        assert await browser.works(pair.a.url)
        assert await browser.works(pair.b.url)
    ended_before = sample(await metrics(pair.a), "gateway_sessions_ended_total", cause="logout_everywhere")

    await logout(pair, first, everywhere=True)

    assert not await first.works(pair.a.url)
    assert not await second.works(pair.a.url)
    if pair.store == "redis":
        assert not await first.works(pair.b.url)
        assert not await second.works(pair.b.url)
    else:
        assert await second.works(pair.b.url), "the cookie store keeps no shared state: B still accepts it"
    for gw in (pair.a, pair.b):
        assert await other.works(gw.url)
    assert sample(await metrics(pair.a), "gateway_sessions_ended_total", cause="logout_everywhere") == ended_before + 1
    # A later login of the same person is not caught by the earlier "everywhere".
    again = await login(pair, KARI)
    for gw in (pair.a, pair.b):
        assert await again.works(gw.url)


async def test_oidc_state_cannot_be_replayed_on_the_other_replica(pair: Replicas) -> None:
    """The same callback URL, with the login cookie as it was, opened twice: on replica A (a session) and
    then on replica B. Redis: the state is spent for every replica, B refuses it as a state mismatch.
    Cookie store (documented limitation): B does not know the state was spent; only the provider's
    single-use code stops the replay there. Replayed on A itself, both stores refuse the state."""
    async with jar_session() as http:
        callback = await login_until_callback(http, pair, KARI)
        cookies = {c.key: c.value for c in http.cookie_jar}
        login_cookie = {LOGIN_COOKIE: cookies[LOGIN_COOKIE]}
        first = await http.get(callback, headers=HTML, allow_redirects=False)
        assert first.status == 302, f"{first.status}: {await first.text()}"
        assert first.headers["Location"] == "/private/replay"
        assert first.cookies["gw_session"].value
    parts = urlsplit(callback)
    target = f"{parts.path}?{parts.query}"

    text_b = await metrics(pair.b)
    mismatches_b = sample(text_b, "gateway_logins_failed_total", provider="dev", reason="state_mismatch")
    failures_b = total(text_b, "gateway_logins_failed_total")
    replay = await request(pair.b.url, target, headers=HTML, cookies=login_cookie)
    assert 400 <= replay.status < 500, f"{replay.status}: {replay.text}"
    assert not replay.set_cookie, "a replayed callback must not set a session"
    assert "Traceback" not in replay.text
    after_b = await metrics(pair.b)
    mismatch_counted = sample(after_b, "gateway_logins_failed_total", provider="dev", reason="state_mismatch")
    assert total(after_b, "gateway_logins_failed_total") == failures_b + 1
    if pair.store == "redis":
        assert replay.status == 400
        assert "This login link is no longer valid" in replay.text
        assert mismatch_counted == mismatches_b + 1
    else:
        assert mismatch_counted == mismatches_b, "the cookie store does not share spent states"

    mismatches_a = sample(await metrics(pair.a), "gateway_logins_failed_total", provider="dev", reason="state_mismatch")
    again = await request(pair.a.url, target, headers=HTML, cookies=login_cookie)
    assert again.status == 400 and not again.set_cookie
    assert (
        sample(await metrics(pair.a), "gateway_logins_failed_total", provider="dev", reason="state_mismatch")
        == mismatches_a + 1
    )
