"""The upstream is untrusted input too (issue 15, item 6).

An application behind the gateway (a compromised one, or one with a header-injection bug) must not be able to
change the gateway's own state in the browser: it cannot set, replace or clear the gateway's cookies (that would
fix a victim's session to the attacker's, or let one application log the person out of every other one with
`session.cookie_domain`). And what a client sends must not tell the application something the gateway did not
check: routing headers that frameworks believe (X-Original-URL, Forwarded, ...) are removed, so a request the
gateway judged by one path cannot be served as another, and the client's address is the one the gateway wrote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.support.ports import free_port
from tests.support.stack import Stack, browser_login, running_stack

#: Every cookie name the gateway owns in this test's config (public_url is http: no __Host- prefix is used,
#: but a prefixed variant is the gateway's too and must be refused as well).
GATEWAY_COOKIES = ["gw_session", "gw_session_login", "gw_session_tx", "__Host-gw_session", "__Secure-gw_session",
                   "GW_SESSION"]


@asynccontextmanager
async def cookie_setting_upstream(set_cookies: list[str]) -> AsyncIterator[tuple[str, list[CIMultiDict[str]]]]:
    """An application that answers every request with the given Set-Cookie lines and records what it got."""
    seen: list[CIMultiDict[str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(CIMultiDict(request.headers))
        response = web.Response(text="ok")
        for line in set_cookies:
            response.headers.add("Set-Cookie", line)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@asynccontextmanager
async def logged_in_to(upstream: str) -> AsyncIterator[tuple[Stack, aiohttp.ClientSession]]:
    def customize(config: dict[str, Any]) -> None:
        config["upstream"] = upstream

    async with (
        running_stack(customize=customize) as stack,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        await browser_login(http, f"{stack.url}/private")
        yield stack, http


def set_cookie_names(response: aiohttp.ClientResponse) -> list[str]:
    names = []
    for line in response.headers.getall("Set-Cookie", []):
        jar: SimpleCookie = SimpleCookie()
        jar.load(line)
        names.extend(jar.keys())
    return names


@pytest.mark.parametrize("name", GATEWAY_COOKIES)
async def test_the_application_cannot_set_or_clear_the_gateways_cookies(name: str) -> None:
    lines = [f"{name}=attacker-chosen; Path=/; HttpOnly", "app_pref=dark; Path=/"]
    async with cookie_setting_upstream(lines) as (upstream, _seen), logged_in_to(upstream) as (stack, http):
        session_before = next(c.value for c in http.cookie_jar if c.key == "gw_session")
        async with http.get(f"{stack.url}/private/page", allow_redirects=False) as resp:
            assert resp.status == 200
            names = set_cookie_names(resp)
        assert "app_pref" in names, "the application's own cookie passes"
        assert name not in names and name.lower() not in {n.lower() for n in names}
        assert next(c.value for c in http.cookie_jar if c.key == "gw_session") == session_before
        async with http.get(f"{stack.url}/_auth/userinfo") as who:
            assert who.status == 200  # still the person's own session


async def test_a_clearing_set_cookie_for_the_session_is_dropped_too() -> None:
    lines = ["gw_session=; Max-Age=0; Path=/", "gw_session=x; Domain=127.0.0.1; Path=/private"]
    async with cookie_setting_upstream(lines) as (upstream, _seen), logged_in_to(upstream) as (stack, http):
        async with http.get(f"{stack.url}/private/page", allow_redirects=False) as resp:
            assert resp.status == 200
            assert resp.headers.getall("Set-Cookie", []) == []
        async with http.get(f"{stack.url}/_auth/userinfo") as who:
            assert who.status == 200


ROUTING_HEADERS = {
    "X-Original-URL": "/admin/",
    "X-Rewrite-URL": "/admin/",
    "X-Original-Method": "DELETE",
    "X-Forwarded-Uri": "/admin/",
    "X-Forwarded-Method": "DELETE",
    "X-Forwarded-Prefix": "/admin",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Server": "evil.example",
    "Forwarded": "for=203.0.113.9;host=evil.example;proto=https",
    "X-Real-IP": "203.0.113.9",
    "X-Client-IP": "203.0.113.9",
    "True-Client-IP": "203.0.113.9",
}


@pytest.mark.parametrize("name", sorted(ROUTING_HEADERS))
async def test_client_routing_headers_never_reach_the_application(name: str) -> None:
    """Dropped with the identity headers (gateway/assertion.py ROUTING_HEADERS); kept here as the request half
    of this file's decision list."""
    async with cookie_setting_upstream([]) as (upstream, seen), logged_in_to(upstream) as (stack, http):
        async with http.get(f"{stack.url}/private/page", headers={name: ROUTING_HEADERS[name]}) as resp:
            assert resp.status == 200
        assert name not in seen[-1], f"{name} reached the application"
        assert seen[-1].getall("X-Forwarded-For") == ["127.0.0.1"]
