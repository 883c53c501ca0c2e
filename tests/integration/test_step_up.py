"""Step-up (issue 16 item 2) through the development IdP: a path whose rule needs level 4 raises a level-3
session by a new login of the same person; another person's login is refused and the old session kept; an
API client gets RFC 9470's 401; forward-auth answers the same."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.support.stack import browser_login, running_stack

LOA3, LOA4 = "urn:eid:dev:loa3", "urn:eid:dev:loa4"


def customize(config: dict[str, Any]) -> None:
    config["providers"][0].update(acr_values=[LOA3, LOA4], acr_levels={LOA3: 3, LOA4: 4})
    config["headers"] = {"ssn": "X-Auth-Ssn", "level": "X-Auth-Level"}
    config["rules"] = [{"path_prefix": "/secure/", "require": {"min_level": 4}}]
    config["trusted_proxies"] = ["127.0.0.1/32"]


def jar() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def session_cookie(http: aiohttp.ClientSession) -> str:
    return next(c.value for c in http.cookie_jar if c.key == "gw_session")


async def test_a_browser_is_raised_by_a_login_of_the_same_person() -> None:
    async with running_stack(customize=customize) as stack, jar() as http:
        assert (await browser_login(http, f"{stack.url}/private")).status == 200
        assert stack.echo.requests[-1].headers["X-Auth-Level"] == "3"  # the IdP's first value: loa3
        weak = session_cookie(http)
        async with http.get(f"{stack.url}/secure/pay", headers={"Accept": "text/html"}, allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"].startswith(stack.issuer)
            assert parse_qs(urlsplit(r.headers["Location"]).query)["acr_values"] == [LOA4]
        before = len(stack.echo.requests)
        final = await browser_login(http, f"{stack.url}/secure/pay")
        assert final.status == 200 and str(final.url).endswith("/secure/pay")
        seen = stack.echo.requests[-1].headers
        assert seen["X-Auth-Level"] == "4" and len(stack.echo.requests) == before + 1
        # The weak session ended with the step-up: its cookie is refused now.
        async with aiohttp.ClientSession() as other, other.get(
            f"{stack.url}/private", headers={"Cookie": f"gw_session={weak}"}
        ) as resp:
            assert resp.status == 401


async def test_a_step_up_by_another_person_is_refused_and_the_session_kept() -> None:
    async with running_stack(customize=customize) as stack, jar() as http:
        assert (await browser_login(http, f"{stack.url}/private", person="Åsa Öberg")).status == 200
        asa_ssn = stack.echo.requests[-1].headers["X-Auth-Ssn"]
        before = len(stack.echo.requests)
        refused = await browser_login(http, f"{stack.url}/secure/pay", person="Sven Svensson")
        assert refused.status == 403 and "another person" in await refused.text()
        assert len(stack.echo.requests) == before  # nothing forwarded
        async with http.get(f"{stack.url}/private") as resp:
            assert resp.status == 200
        seen = stack.echo.requests[-1].headers
        assert seen["X-Auth-Ssn"] == asa_ssn and seen["X-Auth-Level"] == "3"  # Åsa's session, as it was


async def test_an_api_client_gets_rfc_9470s_answer_and_its_login_url_works() -> None:
    async with running_stack(customize=customize) as stack, jar() as http:
        assert (await browser_login(http, f"{stack.url}/private")).status == 200
        before = len(stack.echo.requests)
        async with http.get(f"{stack.url}/secure/pay?x=1", headers={"Accept": "application/json"}) as resp:
            assert resp.status == 401
            challenge = resp.headers["WWW-Authenticate"]
            body = await resp.json()
        assert challenge.startswith('Bearer error="insufficient_user_authentication"')
        assert f'acr_values="{LOA4}"' in challenge
        assert body["error"] == "insufficient_user_authentication" and len(stack.echo.requests) == before
        query = parse_qs(urlsplit(body["login_url"]).query)
        assert query["step_up"] == ["1"] and query["rd"] == ["/secure/pay?x=1"] and query["acr_values"] == [LOA4]
        final = await browser_login(http, body["login_url"])
        assert final.status == 200 and stack.echo.requests[-1].headers["X-Auth-Level"] == "4"


async def test_forward_auth_answers_the_same() -> None:
    async with running_stack(customize=customize) as stack, jar() as http:
        assert (await browser_login(http, f"{stack.url}/private")).status == 200
        headers = {"X-Original-URL": f"{stack.url}/secure/pay", "X-Original-Method": "GET"}
        async with http.get(f"{stack.url}/_auth/verify", headers=headers) as resp:
            assert resp.status == 401
            assert 'error="insufficient_user_authentication"' in resp.headers["WWW-Authenticate"]
            assert "step_up=1" in resp.headers["X-Auth-Login-Url"]
            assert "X-Auth-Ssn" not in resp.headers and "X-Auth-Assertion" not in resp.headers
        headers["X-Original-URL"] = f"{stack.url}/other"
        async with http.get(f"{stack.url}/_auth/verify", headers=headers) as resp:
            assert resp.status == 200


async def test_a_step_up_rule_naming_a_provider_without_levels_is_a_config_error() -> None:
    from gateway.config import load_settings
    from gateway.errors import ConfigError

    document = {
        "public_url": "https://app.example.com", "upstream": "http://127.0.0.1:1",
        "providers": [{"name": "p", "issuer": "https://op.example.com", "client_id": "c", "client_secret": "s"}],
        "session": {"secret": "x" * 40},
        "rules": [{"path_prefix": "/a/", "require": {"min_level": 4, "provider": "p", "acr_values": ["x"]}},
                  {"path_prefix": "/b/", "require": {"min_level": "high"}}],
    }
    try:
        load_settings(document, {})
    except ConfigError as exc:
        problems = exc.problems
    else:
        raise AssertionError("accepted")
    assert "rules[0].require.provider: p has no acr_levels, so no level can be asked of it" in problems
    assert any(p.startswith("rules[1].require.min_level: must be a whole number") for p in problems)
