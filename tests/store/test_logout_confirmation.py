"""A logout the store cannot confirm is never answered as done (issue 15, item 4, through the HTTP path).

Real redis-server primary and replica; the gateway (in-process) keeps sessions on the primary. With the replica
paused (SIGSTOP) no replica acknowledges the delete, so a failover could undo it: the logout is a 503 page that
says it could not be confirmed and leads back to the form, the cookie is not cleared, and no 303 to "logged out"
is sent. With the replica back, the same click logs out.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from tests.support.redis_sentinel import Pair, primary_and_replica
from tests.support.stack import Stack, browser_login, running_stack

MESSAGE = "Your sign-out could not be confirmed. Please try again in a moment."


@pytest_asyncio.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with primary_and_replica(tmp_path) as found:
        yield found


async def logout(http: aiohttp.ClientSession, stack: Stack) -> aiohttp.ClientResponse:
    return await http.post(f"{stack.url}/_auth/logout", allow_redirects=False,
                           headers={"Origin": stack.config["public_url"], "Sec-Fetch-Site": "same-origin",
                                    "Sec-Fetch-Mode": "navigate", "Accept": "text/html",
                                    "Content-Type": "application/x-www-form-urlencoded"})


async def test_an_unconfirmed_logout_says_so_and_the_retry_logs_out(pair: Pair) -> None:
    def customize(config: dict[str, Any]) -> None:
        config["session"].update(store=pair.url(), store_timeout="400ms")

    async with running_stack(customize=customize) as stack, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        assert (await browser_login(http, f"{stack.url}/private")).status == 200
        assert pair.replica.process is not None
        pair.replica.process.send_signal(signal.SIGSTOP)
        try:
            refused = await logout(http, stack)
            body = await refused.text()
            assert refused.status == 503, body
            assert MESSAGE in body and "logout_not_confirmed" in body
            assert 'href="/_auth/logout"' in body  # back to the confirm page
            assert not [c for c in refused.headers.getall("Set-Cookie", []) if c.startswith("gw_session=")]
            assert refused.headers.get("Location") is None
        finally:
            pair.replica.process.send_signal(signal.SIGCONT)
        await pair.replica_in_sync()
        done = await logout(http, stack)
        assert done.status == 303 and done.headers["Location"].endswith("/_auth/logged-out")
        async with http.get(f"{stack.url}/_auth/userinfo") as after:
            assert after.status == 401
