"""Refresh tokens against a real OP (oidc-provider 9, tests/op/server.js with OP_REFRESH=1).

The OP gives the gateway's client a refresh token with every token response, access tokens that live
REFRESH_ACCESS_TOKEN_TTL (3) seconds, and a new refresh token on every refresh (rotation: using a refresh token
a second time is invalid_grant and makes the OP revoke the whole grant). The gateway (provider setting
``refresh_tokens: true``) refreshes a session once its access token is (nearly) expired: once per session even
under concurrent requests, with the newest refresh token, and when the OP refuses (the grant was revoked) the
session ends and the request never reaches the upstream.

Every test runs with the cookie session store and with the Redis one (a redis-server of its own).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.interop.conftest import REFRESH_ACCESS_TOKEN_TTL
from tests.interop.test_oidc_provider_login import (
    BROWSER_HEADERS,
    PAGE,
    TIMEOUT,
    gateway_config,
    requests_for,
    sign_in_at_provider,
)
from tests.support.echo import EchoUpstream
from tests.support.gateway import run_gateway

if TYPE_CHECKING:
    from tests.interop.conftest import ControlledOpenIDProvider

pytestmark = pytest.mark.interop

CLIENT_ID = "gw-basic"
RESPONSE_MODE = "query"
HTML = {"Accept": BROWSER_HEADERS["Accept"], "User-Agent": BROWSER_HEADERS["User-Agent"]}
JSON = {"Accept": "application/json"}
#: How long past the access token's expiry the tests wait before the next request.
PAST_EXPIRY = REFRESH_ACCESS_TOKEN_TTL + 1
CONCURRENT = 10


@pytest.fixture(params=["cookie", "redis"])
def session_store(request: pytest.FixtureRequest) -> str | None:
    """None: the default cookie store; else the URL of a fresh Redis for ``session.store``."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return None


def refreshes(counters: dict[str, Any], account_id: str | None = None, *, since: int = 0) -> list[dict[str, Any]]:
    """The OP's refresh_token grant requests from the ``since``-th on (all, or the successful ones of
    ``account_id``). The OP serves the whole test session: every test counts from its own start."""
    entries = counters["refresh"][since:]
    if account_id is None:
        return list(entries)
    return [e for e in entries if e["account_id"] == account_id and e["status"] == 200]


async def get(browser: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, str | None]:
    async with browser.get(url, headers=headers, allow_redirects=False) as response:
        await response.read()
        return response.status, response.headers.get("Location")


async def test_refresh_once_then_session_ends_when_grant_revoked(
    refresh_provider: ControlledOpenIDProvider, session_store: str | None
) -> None:
    op = refresh_provider
    assert op.access_token_ttl == REFRESH_ACCESS_TOKEN_TTL and op.refresh_rotate
    store = "redis" if session_store else "cookie"
    alice_login, bob_login = f"rt-alice-{store}", f"rt-bob-{store}"
    start = len((await op.counters())["refresh"])
    async with EchoUpstream() as echo:
        config = gateway_config(op, CLIENT_ID, RESPONSE_MODE, echo.url)
        config["providers"][0]["refresh_tokens"] = True
        if session_store is not None:
            config["session"]["store"] = session_store
        async with (
            run_gateway(config, environ={"GW_CLIENT_SECRET": op.client_secrets[CLIENT_ID]}) as gw,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=TIMEOUT) as alice,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=TIMEOUT) as bob,
        ):
            gateway_url = gw.url.rstrip("/")
            assert gateway_url == op.gateway_url, "run_gateway must listen where the OP sends the browser back"
            page_url = f"{gateway_url}{PAGE}"

            def hits() -> int:
                return len(requests_for(echo, PAGE))

            async def sign_in(browser: aiohttp.ClientSession, login: str) -> float:
                try:
                    page = await sign_in_at_provider(browser, op, gateway_url, login=login, response_mode=RESPONSE_MODE)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\n--- OP log ---\n{op.log_tail()}") from None
                assert page.url == page_url and page.status == 200, f"{login} did not land on the page: {page.trail}"
                return time.monotonic()

            # --- two people sign in; the OP hands out refresh tokens and 3-second access tokens ---
            signed_in = await sign_in(alice, alice_login)
            await sign_in(bob, bob_login)
            counters = await op.counters()
            for login in (alice_login, bob_login):
                entry = [e for e in counters["logins"] if e["account_id"] == login][-1]
                assert entry["refresh_token_issued"], f"the OP issued no refresh token to {login}: {entry}"
                assert entry["expires_in"] == REFRESH_ACCESS_TOKEN_TTL, entry
            assert not refreshes(counters, since=start), "refreshed while the access tokens were fresh"

            # --- past the access token's expiry: CONCURRENT requests at once, exactly one refresh ---
            await asyncio.sleep(max(0.0, signed_in + PAST_EXPIRY - time.monotonic()))
            before = hits()
            results = await asyncio.gather(*(get(alice, f"{page_url}?n={i}", JSON) for i in range(CONCURRENT)))
            assert [status for status, _ in results] == [200] * CONCURRENT, (
                f"after the access token expired: {results}\n--- OP log ---\n{op.log_tail()}"
            )
            assert hits() == before + CONCURRENT, "not every request reached the upstream"
            counters = await op.counters()
            done = refreshes(counters, since=start)
            assert len(done) == 1, f"{CONCURRENT} concurrent requests: expected one refresh, the OP saw {done}"
            assert done[0]["status"] == 200 and done[0]["account_id"] == alice_login, done[0]
            assert done[0]["rotated"], f"the OP did not rotate the refresh token: {done[0]}"

            # --- a second expiry: the gateway must refresh with the new (rotated) refresh token ---
            await asyncio.sleep(PAST_EXPIRY)
            status, _ = await get(alice, page_url, JSON)
            done = refreshes(await op.counters(), since=start)
            assert status == 200, f"after the second expiry: {status}; refreshes at the OP: {done}"
            assert len(done) == 2 and done[1]["status"] == 200, (
                f"expected a second successful refresh (with the rotated refresh token), the OP saw {done}"
            )
            status, _ = await get(alice, page_url, JSON)
            assert status == 200 and len(refreshes(await op.counters(), since=start)) == 2, (
                "refreshed again with a fresh token"
            )

            # --- the OP revokes alice's grant; once her access token expires, her session ends ---
            revoked = await op.revoke_grants(alice_login)
            assert revoked, f"the OP knew no grant of {alice_login}"
            await asyncio.sleep(PAST_EXPIRY)
            before, seen = hits(), len(refreshes(await op.counters(), since=start))
            status, location = await get(alice, page_url, HTML)
            done = refreshes(await op.counters(), since=start)[seen:]
            assert len(done) == 1, f"expected one refresh attempt after the revocation, the OP saw {done}"
            assert done[0]["status"] == 400 and done[0]["error"] == "invalid_grant", done[0]
            assert status == 302 and location is not None, (
                f"GET {PAGE} (HTML) after the grant was revoked: {status}, expected a redirect to the login"
            )
            assert urlsplit(location).path == "/_auth/login", f"redirected to {location}, not to the login"
            status, _ = await get(alice, page_url, JSON)
            assert status == 401, f"GET {PAGE} (JSON) after the refresh was refused: {status}, expected 401"
            assert hits() == before, "the upstream was reached without a valid refresh"
            assert len(refreshes(await op.counters(), since=start)) == seen + 1, (
                "the ended session tried to refresh again"
            )

            # --- bob's grant was not revoked: his session refreshes and goes on ---
            status, _ = await get(bob, page_url, JSON)
            assert status == 200, f"bob after alice's grant was revoked: {status}"
            assert hits() == before + 1
            bob_done = refreshes(await op.counters(), bob_login, since=start)
            assert len(bob_done) == 1, f"bob: expected one successful refresh, the OP saw {bob_done}"
