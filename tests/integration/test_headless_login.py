"""Headless (Idura / Swedish BankID) logins through the gateway's JSON API against the dev IdP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from gateway.protocol.claims import decode_header_value
from tests.support.headless_stack import running_headless_stack


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)


async def start(http: aiohttp.ClientSession, url: str, rd: str = "/private/page") -> dict[str, Any]:
    async with http.post(f"{url}/_auth/headless/start", json={"provider": "se-bankid", "rd": rd}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def wait_for_end(http: aiohttp.ClientSession, url: str, limit: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        async with http.get(f"{url}/_auth/headless/status") as resp:
            assert resp.status == 200, await resp.text()
            view = await resp.json()
        if view["status"] != "pending":
            return view
        await asyncio.sleep(0.05)
    raise AssertionError("the transaction never ended")


async def test_scripted_client_completes_a_headless_login(tmp_path: Path) -> None:
    async with running_headless_stack(tmp_path) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        view = await start(http, stack.url)
        assert view["status"] == "pending"
        assert view["acr_data"]["qrData"].startswith("bankid.")
        assert set(view) >= {"status", "acr_data", "message", "poll_after_ms", "expires_in"}
        assert "headless_req_id" not in str(view)
        status, _ = await stack.idp(
            "/_dev/bankid/identify", {"autoStartToken": view["acr_data"]["autoStartToken"], "person": "se-asa"}
        )
        assert status == 200
        final = await wait_for_end(http, stack.url)
        assert final["status"] == "complete", final
        assert final["redirect"] == "/private/page"
        async with http.get(f"{stack.url}/private/page") as resp:
            assert resp.status == 200
        seen = stack.echo.requests[-1]
        assert decode_header_value(seen.headers["X-Auth-Name"]) == "Åsa Öberg"
        assert seen.headers["X-Auth-Country"] == "SE"
        assert len(seen.headers.getall("X-Auth-Ssn")) == 1
        # The transaction is spent: its cookie is gone and a status call finds nothing.
        async with http.get(f"{stack.url}/_auth/headless/status") as resp:
            assert resp.status == 404
