"""Rate limits where abuse costs real people something (issue 15, item 8; catalogue row T54).

A bounded storm on loopback: login starts from one client address, headless/CIBA starts from one address, and
CIBA starts for one person's number from many addresses (each would push a notification to that person's
phone). Past the limit: 429 with Retry-After (a page for a browser, JSON for the page's script), nothing sent
to the provider, a metric; other clients and other people are unaffected. With the Redis store the count is
shared by replicas; the defaults are on.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.security.test_gaps_ciba import CIBA_GRANT, CibaOP
from tests.support.echo import EchoUpstream
from tests.support.fake_op import SSN, OpStack, fetch, wait_ready
from tests.support.gateway import run_gateway
from tests.support.ports import free_port
from tests.support.redis_server import redis_server
from tests.support.stack import base_config

START = "/_auth/headless/start"
OTHER_SSN = "196802020575"  # another valid Swedish personnummer
HTML = {"Accept": "text/html"}


@asynccontextmanager
async def ciba_gateways(rate_limits: dict[str, Any] | None, *, replicas: int = 1,
                        store: str | None = None) -> AsyncIterator[tuple[CibaOP, list[OpStack]]]:
    """A CIBA provider ("ciba") and a redirect provider ("dev") on one fake OP, behind ``replicas`` gateways
    that trust 127.0.0.1 as their proxy (so X-Forwarded-For names the client, as behind an ingress)."""
    async with CibaOP() as op, EchoUpstream() as echo:
        op.discovery_overrides.update({
            "backchannel_authentication_endpoint": f"{op.url}/bc-authorize",
            "backchannel_token_delivery_modes_supported": ["poll"],
            "grant_types_supported": ["authorization_code", CIBA_GRANT],
        })
        secret = secrets.token_urlsafe(32)
        stacks: list[OpStack] = []
        async with contextlib.AsyncExitStack() as exits:
            for _ in range(replicas):
                config = base_config(gateway_port=free_port(), metrics_port=free_port(), issuer=op.issuer,
                                     upstream=echo.url, client_secret=op.client_secret)
                redirect = {**config["providers"][0], "client_id": op.client_id}
                ciba = {**redirect, "name": "ciba", "flow": "ciba", "scopes": ["openid"], "poll_interval": "50ms"}
                config["providers"] = [redirect, ciba]
                config["default_provider"] = "dev"
                config["trusted_proxies"] = ["127.0.0.1/32"]
                config["session"]["secret"] = secret
                if store is not None:
                    config["session"]["store"] = store
                if rate_limits is None:
                    config.pop("rate_limits")  # the defaults
                else:
                    config["rate_limits"] = rate_limits
                gateway = await exits.enter_async_context(run_gateway(config))
                await wait_ready(gateway.url)
                stacks.append(OpStack(gateway=gateway, echo=echo, op=op, config=config))
            yield op, stacks


async def ciba_start(http: aiohttp.ClientSession, stack: OpStack, ssn: str, client: str) -> Any:
    return await fetch(http, "POST", stack.gateway.url + START, json={"provider": "ciba", "login_hint": ssn},
                       headers={"Accept": "application/json", "X-Forwarded-For": client})


async def login_start(http: aiohttp.ClientSession, stack: OpStack, client: str, accept: str = "text/html") -> Any:
    return await fetch(http, "GET", stack.gateway.url + "/_auth/login?provider=dev&rd=/x",
                       headers={"Accept": accept, "X-Forwarded-For": client})


async def metric(stack: OpStack, name: str) -> float:
    assert stack.gateway.metrics_url is not None
    async with aiohttp.ClientSession() as http, http.get(stack.gateway.metrics_url) as response:
        text = await response.text()
    wanted = f'gateway_rate_limited_total{{limit="{name}"}}'
    line = next((line for line in text.splitlines() if line.startswith(wanted)), None)
    return float(line.rpartition(" ")[2]) if line else 0.0


async def test_ciba_starts_for_one_person_are_limited_whoever_asks() -> None:
    limits = {"ciba_per_person": "3/10m", "poll_start_per_client": "off", "login_per_client": "off"}
    async with ciba_gateways(limits) as (op, [stack]), aiohttp.ClientSession() as http:
        answers = [await ciba_start(http, stack, SSN, f"203.0.113.{i}") for i in range(1, 11)]
        assert [a.status for a in answers] == [200] * 3 + [429] * 7
        refused = answers[-1]
        assert 1 <= int(refused.headers["Retry-After"]) <= 600
        assert refused.headers["Content-Type"].startswith("application/json")
        assert '"rate_limited"' in refused.body
        assert SSN not in refused.body
        # The phone got three notifications, not ten; another person is unaffected.
        assert [s.form.get("login_hint") for s in op.headless_starts] == [SSN] * 3
        other = await ciba_start(http, stack, OTHER_SSN, "203.0.113.1")
        assert other.status == 200
        assert await metric(stack, "ciba_per_person") == 7


async def test_poll_starts_from_one_address_are_limited_others_are_not() -> None:
    limits = {"poll_start_per_client": "4/1m", "ciba_per_person": "off", "login_per_client": "off"}
    async with ciba_gateways(limits) as (op, [stack]), aiohttp.ClientSession() as http:
        storm = await asyncio.gather(*(ciba_start(http, stack, SSN, "198.51.100.7") for _ in range(12)))
        assert sorted(a.status for a in storm) == [200] * 4 + [429] * 8
        assert len(op.headless_starts) == 4
        assert (await ciba_start(http, stack, SSN, "198.51.100.8")).status == 200


async def test_login_starts_from_one_address_get_a_429_page_others_log_in() -> None:
    limits = {"login_per_client": "5/1m", "poll_start_per_client": "off", "ciba_per_person": "off"}
    async with ciba_gateways(limits) as (_op, [stack]), aiohttp.ClientSession() as http:
        answers = [await login_start(http, stack, "192.0.2.50") for _ in range(8)]
        assert [a.status for a in answers] == [302] * 5 + [429] * 3
        page = answers[-1]
        assert page.headers["Content-Type"].startswith("text/html")
        assert "Too many attempts" in page.body and "Retry-After" in page.headers
        api = await login_start(http, stack, "192.0.2.50", accept="application/json")
        assert api.status == 429 and api.headers["Content-Type"].startswith("application/json")
        assert (await login_start(http, stack, "192.0.2.51")).status == 302
        assert await metric(stack, "login_per_client") == 4


async def test_the_defaults_are_on() -> None:
    async with ciba_gateways(None) as (_op, [stack]), aiohttp.ClientSession() as http:
        answers = [await ciba_start(http, stack, SSN, f"203.0.113.{i}") for i in range(1, 8)]
        assert [a.status for a in answers] == [200] * 5 + [429] * 2  # ciba_per_person: 5/10m
        logins = [await login_start(http, stack, "192.0.2.60") for _ in range(121)]
        assert [a.status for a in logins].count(302) == 120 and logins[-1].status == 429  # login_per_client: 120/1m


async def test_with_redis_the_count_is_shared_by_replicas(tmp_path: Path) -> None:
    limits = {"ciba_per_person": "4/10m", "poll_start_per_client": "off", "login_per_client": "off"}
    with redis_server(tmp_path) as url:
        async with ciba_gateways(limits, replicas=2, store=url) as (op, stacks), aiohttp.ClientSession() as http:
            answers = [await ciba_start(http, stacks[i % 2], SSN, f"203.0.113.{i}") for i in range(8)]
            assert [a.status for a in answers] == [200] * 4 + [429] * 4
            assert len(op.headless_starts) == 4


@pytest.mark.parametrize("limits", [{"ciba_per_person": "off", "poll_start_per_client": "off",
                                     "login_per_client": "off"}])
async def test_limits_that_are_off_refuse_nothing(limits: dict[str, str]) -> None:
    async with ciba_gateways(limits) as (_op, [stack]), aiohttp.ClientSession() as http:
        answers = [await ciba_start(http, stack, SSN, "203.0.113.1") for _ in range(8)]
        assert {a.status for a in answers} == {200}
