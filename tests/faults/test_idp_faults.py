"""The identity provider fails during a login: it is down, it hangs, it rotated its signing key.

Real processes: the gateway (`eid-gateway run`) and the development IdP (`python -m gateway.devidp`);
the echo upstream and, for the slow IdP, a TCP proxy the test controls run in the test process. The
gateway's own IdP calls (token, JWKS) are the ones that fail; the browser's steps at the IdP are done
before the fault, so what is tested is the gateway's answer at the callback."""

from __future__ import annotations

import asyncio
import html.parser
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.faults.support import (
    HTML,
    STORES,
    Plan,
    Service,
    SlowProxy,
    Store,
    assert_clean_error_page,
    assert_no_identity,
    get_echo,
    jar_session,
    login,
    login_until_callback,
    person,
    running,
    session_store,
    write_key,
)
from tests.support.echo import EchoUpstream
from tests.support.ports import free_port
from tests.support.process import GatewayProcess, fresh_session, gateway_process, metric

IDP_TIMEOUT = 2.0  # providers[].timeout: discovery, JWKS and token calls
MARGIN = 2.0  # scheduling slack on a loaded CI machine
ASA, SVEN, KARI = person("se-asa"), person("se-sven"), person("no-kari")


@dataclass
class Env:
    plan: Plan
    idp: Service
    key_file: Path
    gw: GatewayProcess
    echo: EchoUpstream
    proxy: SlowProxy | None
    sessions: Store

    async def metrics(self) -> str:
        return await self.gw.metrics(0)


@asynccontextmanager
async def idp_stack(tmp_path: Path, *, store: str = "cookie", slow_proxy: bool = False) -> AsyncIterator[Env]:
    """The dev IdP process (behind a SlowProxy if asked), an echo upstream, the gateway process."""
    async with AsyncExitStack() as stack:
        echo = await stack.enter_async_context(EchoUpstream())
        idp_port = free_port()
        proxy = await stack.enter_async_context(SlowProxy(target_port=idp_port)) if slow_proxy else None
        # With a proxy, the issuer (so every IdP URL the gateway and the browser use) names the proxy.
        plan = Plan(tmp_path, upstream_url=echo.url, idp_port=idp_port, issuer_port=proxy.port if proxy else 0)
        plan.config["providers"][0]["timeout"] = f"{IDP_TIMEOUT:g}s"
        sessions = await stack.enter_async_context(session_store(store, tmp_path))
        plan.config["session"].update(sessions.keys)
        key_file = write_key(tmp_path / "idp-key.pem")
        idp = await stack.enter_async_context(running(plan.idp(key_file)))
        gw = await stack.enter_async_context(gateway_process(plan.config, tmp_path, workers=1))
        yield Env(plan=plan, idp=idp, key_file=key_file, gw=gw, echo=echo, proxy=proxy, sessions=sessions)


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            self.links[data.strip()] = self._href

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def retry_link(page: str) -> str:
    parser = _Links()
    parser.feed(page)
    assert "Try again" in parser.links, f"no 'Try again' link on the error page:\n{page}"
    return parser.links["Try again"]


async def open_callback(http: aiohttp.ClientSession, url: str) -> tuple[int, str, str, Any, float]:
    """(status, content type, body, headers, seconds) of the browser's callback request."""
    started = time.monotonic()
    async with http.get(url, headers=HTML, allow_redirects=False) as resp:
        body = await resp.text()
        return resp.status, resp.content_type, body, resp.headers, time.monotonic() - started


def assert_idp_failure_page(status: int, content_type: str, body: str, headers: Any, rd: str) -> str:
    """The operator's expectations of a failed callback; returns the retry link."""
    assert status == 502, f"HTTP {status}: {body[:800]}"
    assert_clean_error_page(body, status, content_type)
    assert "The identity provider could not be reached" in body, body
    assert "Error code: idp_unavailable" in body, body
    assert_no_identity(body, headers, SVEN)
    link = retry_link(body)
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("", "", "/_auth/login"), link
    assert parse_qs(parts.query) == {"rd": [rd]}, link
    return link


async def assert_session_reaches_upstream(env: Env, http: aiohttp.ClientSession, who: Any, tag: str) -> None:
    before = len(env.echo.requests)
    for i in range(5):
        status, echoed = await get_echo(http, f"{env.gw.url}/{tag}/{i}")
        assert status == 200, (status, echoed)
        assert echoed["path"] == f"/{tag}/{i}"
    seen = env.echo.requests[before:]
    assert len(seen) == 5
    assert all(r.headers.get("X-Auth-Ssn") == who.ssn and "X-Auth-Assertion" in r.headers for r in seen)


@pytest.mark.parametrize("store", STORES)
async def test_idp_down_during_login_fails_on_a_retry_page_and_sessions_keep_working(
    tmp_path: Path, store: str
) -> None:
    rd = "/private/report?year=2026"
    async with idp_stack(tmp_path, store=store) as env, jar_session() as old, jar_session() as new:
        await login(old, f"{env.gw.url}/private/start", ASA)
        await env.sessions.assert_holds_sessions()
        callback = await login_until_callback(new, f"{env.gw.url}{rd}", SVEN)

        env.idp.kill()  # the IdP dies between the person's choice and the callback
        status, ctype, body, headers, elapsed = await open_callback(new, callback)
        assert elapsed < IDP_TIMEOUT + MARGIN, f"the failure took {elapsed:.2f}s (timeout {IDP_TIMEOUT}s)"
        link = assert_idp_failure_page(status, ctype, body, headers, rd)
        failed = metric(await env.metrics(), "gateway_logins_failed_total", provider="dev",
                        reason="token_endpoint_unreachable")
        assert failed == 1
        # No session came out of the failed login; the one made before the outage is unaffected.
        status, answer = await get_echo(new, f"{env.gw.url}/private/x")
        assert status == 401, (status, answer)
        await assert_session_reaches_upstream(env, old, ASA, "during-outage")

        # The IdP comes back: the page's retry link leads to a complete login.
        await env.idp.restart()
        echoed = await login(new, f"{env.gw.url}{link}", SVEN)
        assert echoed["path"] == "/private/report" and "year=2026" in str(env.echo.requests[-1].query_string)
        assert "Traceback" not in env.gw.log(), env.gw.log()


async def test_idp_slow_during_login_fails_within_the_timeout_and_sessions_keep_working(tmp_path: Path) -> None:
    rd = "/private/slow-idp"
    async with idp_stack(tmp_path, slow_proxy=True) as env, jar_session() as old, jar_session() as new:
        assert env.proxy is not None
        await login(old, f"{env.gw.url}/private/start", ASA)
        callback = await login_until_callback(new, f"{env.gw.url}{rd}", SVEN)

        env.proxy.delay = 60.0  # from now on the IdP hangs: far longer than the gateway's timeout
        pending = asyncio.create_task(open_callback(new, callback))
        try:
            # While that callback waits for the token endpoint, sessions keep reaching the upstream.
            await assert_session_reaches_upstream(env, old, ASA, "while-idp-hangs")
            status, ctype, body, headers, elapsed = await pending
        finally:
            pending.cancel()
        assert elapsed < IDP_TIMEOUT + MARGIN, f"the failure took {elapsed:.2f}s (timeout {IDP_TIMEOUT}s)"
        link = assert_idp_failure_page(status, ctype, body, headers, rd)
        assert env.proxy.held >= 1, "no request of the gateway met the slow IdP"
        text = await env.metrics()
        assert metric(text, "gateway_logins_failed_total", provider="dev", reason="token_endpoint_unreachable") == 1
        assert metric(text, "gateway_idp_request_duration_seconds_count", provider="dev", endpoint="token",
                      outcome="error") == 1
        status, _ = await get_echo(new, f"{env.gw.url}/private/x")
        assert status == 401

        env.proxy.delay = 0.0  # the IdP recovers: the retry link works
        echoed = await login(new, f"{env.gw.url}{link}", SVEN)
        assert echoed["path"] == rd
        assert "Traceback" not in env.gw.log(), env.gw.log()


async def idp_kids(env: Env) -> set[str]:
    async with fresh_session() as http, http.get(f"{env.plan.issuer}/jwks") as resp:
        assert resp.status == 200
        return {key["kid"] for key in (await resp.json())["keys"]}


async def test_idp_key_rotation_fetches_the_new_jwks_once_and_logins_continue(tmp_path: Path) -> None:
    async with idp_stack(tmp_path) as env, jar_session() as first, jar_session() as second, \
            jar_session() as third:

        async def jwks_fetches() -> float:
            return metric(await env.metrics(), "gateway_jwks_refreshes_total", provider="dev", outcome="ok")

        assert await jwks_fetches() == 1  # at start-up
        await login(first, f"{env.gw.url}/private/start", ASA)
        old_kids = await idp_kids(env)

        # Rotation: the IdP comes back signing with a new key; only the new kid is published.
        write_key(env.key_file)
        await env.idp.restart()
        new_kids = await idp_kids(env)
        assert new_kids and not new_kids & old_kids, (old_kids, new_kids)

        try:
            await login(second, f"{env.gw.url}/private/after-rotation", SVEN)
        except AssertionError as exc:
            text = await env.metrics()
            failures = [line for line in text.splitlines()
                        if line.startswith(("gateway_token_validation_failures_total", "gateway_jwks_refreshes_total"))]
            raise AssertionError(
                f"login after the IdP's key rotation failed ({time.monotonic() - env.gw.started:.1f}s after the "
                f"gateway started); gateway metrics: {failures}"
            ) from exc
        assert await jwks_fetches() == 2, "the new JWKS was not fetched exactly once"
        await login(third, f"{env.gw.url}/private/later", KARI)
        assert await jwks_fetches() == 2, "the JWKS was fetched again although the kid is known now"
        await assert_session_reaches_upstream(env, first, ASA, "old-session")
