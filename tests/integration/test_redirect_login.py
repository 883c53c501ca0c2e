"""End-to-end login through the development IdP and the real gateway, over loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest

from gateway.protocol import jws
from gateway.protocol.claims import decode_header_value
from tests.support.stack import browser_login, follow, parse_forms, running_stack

HTML = {"Accept": "text/html"}


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)


@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
@pytest.mark.parametrize("response_mode", ["query", "form_post"])
async def test_login_reaches_upstream_with_identity(tmp_path: Path, client_auth: str, response_mode: str) -> None:
    def customize(config: dict[str, Any]) -> None:
        config["providers"][0]["response_mode"] = response_mode

    async with (
        running_stack(customize=customize, client_auth=client_auth, tmp_path=tmp_path) as stack,
        aiohttp.ClientSession(cookie_jar=jar()) as http,
    ):
        final = await browser_login(http, f"{stack.url}/private/page?x=1")
        assert final.status == 200, await final.text()
        assert str(final.url) == f"{stack.url}/private/page?x=1"
        seen = stack.echo.requests[-1]
        assert seen.path == "/private/page" and seen.query_string == "x=1"
        assert seen.headers.getall("X-Auth-Country") == ["SE"]
        assert decode_header_value(seen.headers["X-Auth-Name"]) == "Åsa Öberg"
        assert seen.headers["X-Auth-Name"] == "UTF-8''%C3%85sa%20%C3%96berg"
        assert len(seen.headers.getall("X-Auth-Ssn")) == 1
        async with http.get(f"{stack.url}/_auth/jwks.json") as resp:
            keys = jws.parse_jwks(await resp.json())
        claims = jws.verify(seen.headers["X-Auth-Assertion"], keys, algorithms={"ES256"})
        assert claims["iss"] == stack.url and claims["aud"] == "upstream"
        assert claims["name"] == "Åsa Öberg" and claims["ssn"] == seen.headers["X-Auth-Ssn"]
        assert claims["exp"] - claims["iat"] == 60
        # The gateway's own cookies never reach the upstream.
        assert "gw_session" not in seen.headers.get("Cookie", "")


async def test_userinfo_logout_and_replay_of_old_cookie() -> None:
    async with running_stack() as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        await browser_login(http, f"{stack.url}/private")
        async with http.get(f"{stack.url}/_auth/userinfo") as resp:
            assert resp.status == 200
            identity = await resp.json()
        assert identity["name"] == "Åsa Öberg" and identity["idp"] == "dev" and identity["country"] == "SE"
        old_cookie = {c.key: c.value for c in http.cookie_jar}["gw_session"]
        async with http.post(f"{stack.url}/_auth/logout", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"].startswith(stack.issuer + "/logout?")
        async with http.get(f"{stack.url}/private", headers={"Accept": "text/html"}, allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"].startswith("/_auth/login")
        # A copy of the cookie taken before logout is refused too (attacks.md T39, same process).
        async with (
            aiohttp.ClientSession() as other,
            other.get(f"{stack.url}/_auth/userinfo", headers={"Cookie": f"gw_session={old_cookie}"}) as resp,
        ):
            assert resp.status == 401


async def test_cancel_at_idp_ends_on_error_page_without_session() -> None:
    async with running_stack() as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        final = await browser_login(http, f"{stack.url}/private", cancel=True)
        assert final.status in (400, 401)
        text = await final.text()
        assert "Try again" in text and "Traceback" not in text
        assert "gw_session" not in {c.key for c in http.cookie_jar}
        assert stack.echo.requests == []


async def test_the_first_request_after_login_carries_the_assertion_signed_at_login() -> None:
    """The assertion of a new session is signed as the login completes, not when the browser comes back
    (bench row 4c): its iat is the login's time. It is still that session's own, and it expires on time."""
    async with running_stack() as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        response = await follow(http, await http.get(f"{stack.url}/private/a", headers=HTML, allow_redirects=False))
        form = next(f for f in parse_forms(await response.text()) if "Log in as Åsa Öberg" in f["text"])
        decided = await http.post(
            urljoin(str(response.url), form["action"]), data=form["fields"], allow_redirects=False, headers=HTML
        )
        assert decided.status in (302, 303) and "/_auth/callback/" in decided.headers["Location"]
        async with http.get(decided.headers["Location"], headers=HTML, allow_redirects=False) as callback:
            assert callback.status == 302 and callback.headers["Location"] == "/private/a"
        logged_in_at = time.time()
        await asyncio.sleep(1.2)
        async with http.get(f"{stack.url}/private/a", headers=HTML) as page:
            assert page.status == 200
        async with http.get(f"{stack.url}/_auth/jwks.json") as resp:
            keys = jws.parse_jwks(await resp.json())
        claims = jws.verify(stack.echo.requests[-1].headers["X-Auth-Assertion"], keys, algorithms={"ES256"})
        assert claims["iat"] <= logged_in_at and claims["exp"] == claims["iat"] + 60
        assert claims["name"] == "Åsa Öberg"
