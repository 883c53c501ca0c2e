"""Redis goes away under two real gateway replicas, and comes back.

redis-server runs with ``--save "" --dir TMP --dbfilename dump.rdb``; ``redis-cli shutdown save`` stops it
after writing the data set, and starting it again on the same port, dir and file reloads every key, as a
restarted Redis with persistence would. While it is down the gateway fails closed: a clear 503 (a page
for browsers, JSON for APIs), nothing reaches the upstream, the cookie is kept, readiness fails and the
metrics say so. When it is back, service resumes without restarting the gateway, with the same sessions.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.store.support import (
    ASA,
    COOKIE,
    HTML,
    JSON,
    SVEN,
    Answer,
    Replicas,
    eventually,
    jar_session,
    login,
    metrics,
    replicas,
    request,
    sample,
    total,
)
from tests.support.process import GatewayProcess
from tests.support.stack import browser_login

pytestmark = pytest.mark.asyncio(loop_scope="module")
UNAVAILABLE = "Sign-in is unavailable for a moment. Please try again shortly."


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Replicas]:
    def trust_loopback(config: dict[str, Any]) -> None:  # so that /_auth/verify answers the test as an ingress
        config["trusted_proxies"] = ["127.0.0.1/32"]

    tmp = tmp_path_factory.mktemp("redis-faults")
    async with replicas(tmp, "redis", idle_timeout="1h", lifetime="8h", customize=trust_loopback) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def outage(pair: Replicas) -> AsyncIterator[Replicas]:
    """Redis stopped (data saved) for the test; started again afterwards whatever happened."""
    assert pair.redis is not None
    try:
        yield pair
    finally:
        if not pair.redis.running():
            await pair.redis.start()


def assert_clean(answer: Answer) -> None:
    """No stack trace, no internals, no cookie change (the session is neither ended nor replaced)."""
    lowered = answer.text.lower()
    for leak in ("traceback", "redis", "connectionerror", "errno", "exception", 'file "'):
        assert leak not in lowered, f"{leak!r} in {answer.text!r}"
    assert answer.set_cookie is None, f"the session cookie was changed during the outage: {answer.set_cookie!r}"


async def health(gw: GatewayProcess, path: str) -> Answer:
    return await request(gw.url, path)


async def verify(pair: Replicas, gw: GatewayProcess, cookie: str) -> Answer:
    """/_auth/verify as nginx auth_request asks it, for a protected page of the public origin."""
    headers = {"X-Original-URL": f"{pair.public_url}/private/verify", "X-Original-Method": "GET", **JSON}
    return await request(gw.url, "/_auth/verify", cookie=cookie, headers=headers)


async def served_everywhere(pair: Replicas, cookie: str) -> bool:
    answers = [await request(gw.url, "/api/back", cookie=cookie) for gw in pair.both]
    return all(a.status == 200 for a in answers)


async def test_redis_outage_fails_closed_and_service_resumes_by_itself(outage: Replicas) -> None:
    pair = outage
    assert pair.redis is not None
    browser = await login(pair, ASA)
    for gw in pair.both:
        assert await browser.works(gw.url)
        allowed = await verify(pair, gw, browser.cookie)
        assert allowed.status == 200 and allowed.headers["X-Auth-Ssn"] == ASA.ssn, allowed.text
    pids = [gw.proc.pid for gw in pair.both]
    upstream_before = len(pair.echo.requests)

    await pair.redis.shutdown_save()

    for gw in pair.both:
        started = time.monotonic()
        page = await request(gw.url, "/private/page", cookie=browser.cookie, headers=HTML)
        assert page.status == 503, f"{page.status}: {page.text}"
        assert page.headers["Content-Type"].startswith("text/html")
        assert UNAVAILABLE in page.text and "session_store_unavailable" in page.text
        assert_clean(page)

        api = await request(gw.url, "/api/data", cookie=browser.cookie)
        assert api.status == 503, f"{api.status}: {api.text}"
        assert api.headers["Content-Type"].startswith("application/json")
        assert api.json() == {"error": "session_store_unavailable", "message": UNAVAILABLE}
        assert_clean(api)

        post = await request(
            gw.url, "/api/data", cookie=browser.cookie, method="POST", headers={"Accept": "application/json"}
        )
        assert post.status == 503, f"{post.status}: {post.text}"
        assert_clean(post)
        assert time.monotonic() - started < 3.0, "the outage answers must not wait for long timeouts"

        # Forward auth fails closed too: neither "allowed" nor "unauthenticated" (a login loop).
        judged = await verify(pair, gw, browser.cookie)
        assert judged.status == 503, f"{judged.status}: {judged.text}"
        assert "X-Auth-Ssn" not in judged.headers
        assert_clean(judged)

        userinfo = await request(gw.url, "/_auth/userinfo", cookie=browser.cookie)
        assert userinfo.status == 503 and userinfo.json()["error"] == "session_store_unavailable"

        healthz = await health(gw, "/_auth/healthz")
        assert healthz.status == 200, healthz.text
        assert healthz.json()["session_store"] == "down"
        readyz = await health(gw, "/_auth/readyz")
        assert readyz.status == 503, readyz.text
        assert readyz.json()["session_store"] == "down" and readyz.json()["status"] == "not_ready"

        text = await metrics(gw)
        assert total(text, "gateway_session_store_operations_total", result="error") > 0, text
        assert sample(text, "gateway_session_store_up") == 0
    assert len(pair.echo.requests) == upstream_before, "a request reached the upstream during the outage"

    await pair.redis.start()  # same port, dir and dump.rdb: the session record is loaded again

    resumed = await eventually(lambda: served_everywhere(pair, browser.cookie), timeout=5.0)
    assert resumed, "service did not resume after Redis came back"
    for gw in pair.both:
        assert await browser.works(gw.url, "/api/back")
        readyz = await health(gw, "/_auth/readyz")
        assert readyz.status == 200 and readyz.json()["session_store"] == "up", readyz.text
        assert sample(await metrics(gw), "gateway_session_store_up") == 1
    assert [gw.proc.pid for gw in pair.both] == pids and all(gw.proc.poll() is None for gw in pair.both)
    for log in (pair.a.log(), pair.b.log()):
        assert "Traceback" not in log and "unhandled error" not in log, log


async def test_login_while_redis_is_down_fails_on_a_clear_page(outage: Replicas) -> None:
    pair = outage
    assert pair.redis is not None
    upstream_before = len(pair.echo.requests)
    await pair.redis.shutdown_save()

    async with jar_session() as http:
        final = await browser_login(http, f"{pair.a.url}/private/start", person=SVEN.name)
        text = await final.text()
        assert final.status == 503, f"{final.status}: {text}"
        assert final.url.path == "/_auth/callback/dev"
        assert final.headers["Content-Type"].startswith("text/html")
        assert UNAVAILABLE in text
        assert_clean(Answer(final.status, text, final.headers, None))
        assert not any(c.key == COOKIE and c.value for c in http.cookie_jar), "a session was issued"
    assert len(pair.echo.requests) == upstream_before

    await pair.redis.start()
    # The same person can log in as soon as Redis is back, through the same processes.
    browser = await login(pair, SVEN)
    assert await browser.works(pair.b.url)


async def test_redis_that_hangs_fails_within_the_store_timeout(outage: Replicas) -> None:
    """SIGSTOP: connections are accepted by the kernel but nothing answers. Requests must fail closed
    after the 500 ms store timeout (one retry), not hang; SIGCONT and the same session works again."""
    pair = outage
    assert pair.redis is not None
    browser = await login(pair, ASA)
    upstream_before = len(pair.echo.requests)
    pair.redis.signal(signal.SIGSTOP)
    try:
        for gw in pair.both:
            started = time.monotonic()
            api = await request(gw.url, "/api/hang", cookie=browser.cookie)
            elapsed = time.monotonic() - started
            assert api.status == 503, f"{api.status}: {api.text}"
            assert api.json()["error"] == "session_store_unavailable"
            assert_clean(api)
            assert elapsed < 2.5, f"answered after {elapsed:.2f}s with a 500 ms store timeout"
            readyz = await health(gw, "/_auth/readyz")
            assert readyz.status == 503 and readyz.json()["session_store"] == "down", readyz.text
        assert len(pair.echo.requests) == upstream_before
    finally:
        pair.redis.signal(signal.SIGCONT)

    resumed = await eventually(lambda: served_everywhere(pair, browser.cookie), timeout=5.0)
    assert resumed, "service did not resume after Redis answered again"
    for gw in pair.both:
        assert await browser.works(gw.url, "/api/back")
