"""Assurance levels end to end (issue 16 item 1): the development IdP returns the acr it was asked for; with
acr_levels and min_level a login below the level is refused with a page that names both levels, and nothing
is forwarded; a login at the level carries level, acr, amr and auth_time to the headers and the assertion."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.protocol import jws
from tests.support.stack import browser_login, running_stack

LOA3, LOA4 = "urn:eid:dev:loa3", "urn:eid:dev:loa4"


def levels(acr_values: list[str], min_level: int | None) -> Any:
    def customize(config: dict[str, Any]) -> None:
        provider = config["providers"][0]
        provider.update(acr_values=acr_values, acr_levels={LOA3: 3, LOA4: 4})
        if min_level is not None:
            provider["min_level"] = min_level
        config["headers"] = {"name": "X-Auth-Name", "acr": "X-Auth-Acr", "level": "X-Auth-Level", "amr": "X-Auth-Amr"}

    return customize


async def test_a_login_below_min_level_is_refused_and_names_both_levels() -> None:
    async with (
        running_stack(customize=levels([LOA3], 4)) as stack,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        final = await browser_login(http, f"{stack.url}/private")
        assert final.status == 403
        page = await final.text()
        assert "assurance level 4 or higher" in page and "level 3" in page and LOA3 in page
        assert stack.echo.requests == []
        assert not any(c.key == "gw_session" and c.value for c in http.cookie_jar)
        assert stack.gateway.metrics_url is not None
        async with http.get(stack.gateway.metrics_url) as resp:
            metrics = await resp.text()
        assert 'gateway_logins_failed_total{provider="dev",reason="acr_below_min_level"} 1.0' in metrics


@pytest.mark.parametrize("min_level", [None, 4])
async def test_a_login_at_the_level_carries_it_to_headers_and_assertion(min_level: int | None) -> None:
    async with (
        running_stack(customize=levels([LOA4], min_level)) as stack,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        final = await browser_login(http, f"{stack.url}/private")
        assert final.status == 200
        seen = stack.echo.requests[-1].headers
        assert seen["X-Auth-Acr"] == LOA4 and seen["X-Auth-Level"] == "4" and seen["X-Auth-Amr"] == "dev"
        async with http.get(f"{stack.url}/_auth/jwks.json") as resp:
            keys = jws.parse_jwks(await resp.json())
        claims = jws.verify(seen["X-Auth-Assertion"], keys, algorithms={"ES256"})
        assert claims["level"] == 4 and claims["acr"] == LOA4 and claims["amr"] == ["dev"]
        assert isinstance(claims["auth_time"], int)
