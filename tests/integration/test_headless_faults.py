"""Headless (Idura / Swedish BankID) logins that do not simply succeed, against the development IdP.

Every answer of protocols.md §2.2's table is produced by the dev IdP itself (the user declines, the order
expires) or injected with ``POST {issuer}/_dev/headless/faults``. Each test checks the browser-visible
JSON, the cookies, the upstream (nothing forwarded without a session) and the gateway's poll metrics.

The stack polls every 0.2 s (tests/support/headless_stack.py). The pure rule "slow_down adds 5 s for
good" is unit-tested in tests/unit/test_poll.py (test_slow_down_twice_adds_ten_seconds_for_good); here it
is checked once end to end, which costs one real 5.2 s wait.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from gateway.protocol import bankid
from gateway.protocol.claims import decode_header_value
from tests.support.fake_op import Outcome, fetch, jar
from tests.support.gateway import run_gateway
from tests.support.headless_stack import POLL_INTERVAL, HeadlessStack, running_headless_stack

SESSION = "gw_session"
BINDING = "gw_session_tx"
PROVIDER = "se-bankid"
EN = {"Accept-Language": "en", "Accept": "application/json"}
SLOW_DOWN_STEP = 5.0  # CIBA Core §11, protocols.md §2.2


def message(rfa: str) -> str:
    return bankid.MESSAGES[rfa][1]


# ------------------------------------------------------------------------------------------------ helpers


async def metric(url: str | None, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when there are none)."""
    assert url is not None, "the stack has a metrics listener"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def idp_polls(stack: HeadlessStack, result: str | None = None) -> float:
    labels = {"provider": PROVIDER} | ({"result": result} if result else {})
    return await metric(stack.gateway.metrics_url, "gateway_idp_polls_total", **labels)


async def idp_poll_times(stack: HeadlessStack) -> list[float]:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.issuer}/_dev/headless/polls") as resp:
        assert resp.status == 200
        times: list[float] = (await resp.json())["polls"]
        return times


async def start(http: aiohttp.ClientSession, url: str, rd: str = "/private/page") -> dict[str, Any]:
    out = await fetch(http, "POST", f"{url}/_auth/headless/start", json={"provider": PROVIDER, "rd": rd}, headers=EN)
    assert out.status == 200, out.body
    assert out.sets(BINDING)
    view: dict[str, Any] = json.loads(out.body)
    assert view["status"] == "pending", view
    return view


async def status(http: aiohttp.ClientSession, url: str) -> tuple[Outcome, dict[str, Any]]:
    out = await fetch(http, "GET", f"{url}/_auth/headless/status", headers=EN)
    return out, (json.loads(out.body) if out.status == 200 else {})


async def until_terminal(http: aiohttp.ClientSession, url: str, limit: float = 8.0) -> tuple[Outcome, dict[str, Any]]:
    """Poll like the login page (faster) until the transaction ends; every answer on the way is a 200."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        out, view = await status(http, url)
        assert out.status == 200, (out.status, out.body)
        if view["status"] != "pending":
            return out, view
        assert not out.sets(SESSION)
        await asyncio.sleep(0.03)
    raise AssertionError("the transaction never ended")


async def add_fault(stack: HeadlessStack, fault: str, count: int = 1) -> None:
    code, body = await stack.idp("/_dev/headless/faults", {"fault": fault, "count": count})
    assert code == 200, body


async def identify(stack: HeadlessStack, view: dict[str, Any], person: str = "se-asa") -> None:
    code, body = await stack.idp(
        "/_dev/bankid/identify", {"autoStartToken": view["acr_data"]["autoStartToken"], "person": person}
    )
    assert code == 200, body


async def private_status(http: aiohttp.ClientSession, url: str) -> int:
    out = await fetch(http, "GET", f"{url}/private/page", headers={"Accept": "application/json"})
    return out.status


async def assert_refused(http: aiohttp.ClientSession, stack: HeadlessStack, out: Outcome, view: dict[str, Any]) -> None:
    """A terminal answer without a login: no session, the binding cookie cleared, nothing forwarded, spent."""
    assert "redirect" not in view, view
    assert not out.sets(SESSION), out.set_cookies
    assert out.clears(BINDING), out.set_cookies
    assert out.headers.get("Cache-Control") == "no-store"
    again, _ = await status(http, stack.url)
    assert again.status == 404, again.body
    assert await private_status(http, stack.url) == 401
    assert stack.echo.requests == []


@asynccontextmanager
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        yield http


# ------------------------------------------------------------------------------------------------ user answers


async def test_decline_fails_with_access_denied_and_rfa6(tmp_path: Path) -> None:
    async with running_headless_stack(tmp_path) as stack, browser() as http:
        view = await start(http, stack.url)
        code, body = await stack.idp("/_dev/bankid/decline", {"autoStartToken": view["acr_data"]["autoStartToken"]})
        assert code == 200, body
        out, final = await until_terminal(http, stack.url)
        assert (final["status"], final["reason"]) == ("failed", "access_denied"), final
        assert final["message"] == message("RFA6") == "Action cancelled."
        assert final["acr_data"] == {}  # the QR and autostart token died with the order
        await assert_refused(http, stack, out, final)
        assert await idp_polls(stack, "access_denied") == 1
        assert await metric(stack.gateway.metrics_url, "gateway_poll_transactions_failed_total",
                            provider=PROVIDER, reason="access_denied") == 1


async def test_order_expiry_ends_as_expired(tmp_path: Path) -> None:
    async with running_headless_stack(tmp_path, expires_in=1) as stack, browser() as http:
        began = time.monotonic()
        view = await start(http, stack.url)
        assert view["expires_in"] in (0, 1)
        out, final = await until_terminal(http, stack.url, limit=4.0)
        elapsed = time.monotonic() - began
        assert final["status"] == "expired", final
        assert final["reason"] in ("expired", "expired_token"), final
        assert final["message"] == message("RFA8")
        assert elapsed >= 0.9, elapsed  # not given up before the order's lifetime
        await assert_refused(http, stack, out, final)
        polls = await idp_polls(stack)
        await asyncio.sleep(2 * POLL_INTERVAL)
        assert await idp_polls(stack) == polls  # polling stopped at expiry


# ------------------------------------------------------------------------------------------------ injected faults


async def test_slow_down_adds_five_seconds_and_the_login_still_completes(tmp_path: Path) -> None:
    async with running_headless_stack(tmp_path) as stack, browser() as http:
        view = await start(http, stack.url)
        await identify(stack, view)
        # The interval grows for good, so slow_down goes where only one more poll is needed: after the
        # poll that reported userSign (the dev IdP hands out the token on the poll after that one).
        deadline = time.monotonic() + 3
        while (await status(http, stack.url))[1].get("hint_code") != "userSign":
            assert time.monotonic() < deadline, "userSign was never reported"
            await asyncio.sleep(0.05)
        await add_fault(stack, "slow_down")
        await poll_until(http, stack, lambda: idp_polls(stack, "slow_down"), after=False)
        before = await idp_polls(stack)

        async def polled_again() -> bool:
            return await idp_polls(stack) > before

        # The next poll is the one the token comes with, so the call that makes it also completes the login.
        _, out, final = await poll_until(http, stack, polled_again, after=True, limit=10.0)
        # When the two polls reached the IdP, on its clock: the gateway times the longer interval from the
        # slow_down answer, so the gap is at least that (a status call that comes just before may be held
        # until then, so the browser's own clock readings cannot bound it).
        slowed_at, next_poll = (await idp_poll_times(stack))[-2:]
        assert next_poll - slowed_at >= POLL_INTERVAL + SLOW_DOWN_STEP, next_poll - slowed_at
        assert final["status"] == "complete", final
        assert out.sets(SESSION)
        assert await idp_polls(stack, "slow_down") == 1
        assert await idp_polls(stack, "success") == 1


async def poll_until(http: aiohttp.ClientSession, stack: HeadlessStack, done: Callable[[], Awaitable[object]],
                     *, after: bool, limit: float = 3.0) -> tuple[float, Outcome, dict[str, Any]]:
    """Status calls until ``done()``, all pending before that one; returns the clock before the last call
    (``after=False``: after it) and its answer."""
    deadline = time.monotonic() + limit
    while True:
        assert time.monotonic() < deadline, "the expected IdP poll never happened"
        sent = time.monotonic()
        out, view = await status(http, stack.url)
        ended = time.monotonic()
        assert out.status == 200, (out.status, out.body)
        if await done():
            return (ended if not after else sent), out, view
        assert view["status"] == "pending", view
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("fault", "result"), [("http_429", "rate_limited"), ("http_500", "server_error")])
async def test_idp_overload_keeps_the_login_pending_then_it_completes(tmp_path: Path, fault: str,
                                                                       result: str) -> None:
    async with running_headless_stack(tmp_path) as stack, browser() as http:
        await add_fault(stack, fault)
        view = await start(http, stack.url)
        deadline = time.monotonic() + 5
        while await idp_polls(stack, result) < 1:
            assert time.monotonic() < deadline, f"the injected {fault} was never polled"
            out, pending = await status(http, stack.url)
            assert out.status == 200 and pending["status"] == "pending", (out.status, pending)
            assert not out.sets(SESSION)
            await asyncio.sleep(0.05)
        await identify(stack, view)
        out, final = await until_terminal(http, stack.url)
        assert final["status"] == "complete", final
        assert out.sets(SESSION) and out.clears(BINDING)
        assert final["redirect"] == "/private/page"
        assert await private_status(http, stack.url) == 200
        assert await idp_polls(stack, result) == 1
        assert await idp_polls(stack, "success") == 1


async def test_malformed_json_fails_with_malformed_response(tmp_path: Path) -> None:
    async with running_headless_stack(tmp_path) as stack, browser() as http:
        await add_fault(stack, "malformed_json")
        await start(http, stack.url)
        out, final = await until_terminal(http, stack.url)
        assert (final["status"], final["reason"]) == ("failed", "malformed_response"), final
        await assert_refused(http, stack, out, final)
        assert await idp_polls(stack, "malformed") == 1


@pytest.mark.parametrize(("fault", "reason"), [("bad_id_token", None), ("wrong_audience", "audience")])
async def test_bad_id_tokens_fail_with_token_invalid(tmp_path: Path, fault: str, reason: str | None) -> None:
    async with running_headless_stack(tmp_path) as stack, browser() as http:
        await add_fault(stack, fault)
        view = await start(http, stack.url)
        await identify(stack, view)
        out, final = await until_terminal(http, stack.url)
        assert (final["status"], final["reason"]) == ("failed", "token_invalid"), final
        await assert_refused(http, stack, out, final)
        labels = {"provider": PROVIDER} | ({"reason": reason} if reason else {})
        assert await metric(stack.gateway.metrics_url, "gateway_token_validation_failures_total", **labels) == 1
        assert await idp_polls(stack, "success") == 1  # the IdP's answer was a token; the gateway refused it


@pytest.mark.parametrize(("fault", "expected"), [("expired_token", ("expired", "expired_token", "RFA8")),
                                                 ("invalid_grant", ("failed", "invalid_grant", "RFA22"))])
async def test_final_idp_errors_end_the_transaction(tmp_path: Path, fault: str,
                                                    expected: tuple[str, str, str]) -> None:
    async with running_headless_stack(tmp_path) as stack, browser() as http:
        await add_fault(stack, fault)
        await start(http, stack.url)
        out, final = await until_terminal(http, stack.url)
        assert (final["status"], final["reason"], final["message"]) == (*expected[:2], message(expected[2])), final
        await assert_refused(http, stack, out, final)
        polls = await idp_polls(stack)
        assert await idp_polls(stack, fault) == 1
        await asyncio.sleep(2 * POLL_INTERVAL)
        assert await idp_polls(stack) == polls  # no poll after a final answer


# ------------------------------------------------------------------------------------------------ cancel


async def test_cancel_ends_the_transaction_for_good(tmp_path: Path) -> None:
    async with running_headless_stack(tmp_path) as stack, browser() as http:
        view = await start(http, stack.url)
        out, pending = await status(http, stack.url)
        assert pending["status"] == "pending"
        cookie = http.cookie_jar.filter_cookies(URL(stack.url + "/_auth/headless/status"))[BINDING].value
        out = await fetch(http, "POST", f"{stack.url}/_auth/headless/cancel", json={}, headers=EN)
        assert out.status == 200, out.body
        cancelled = json.loads(out.body)
        assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "cancelled"), cancelled
        assert cancelled["message"] == message("RFA3")
        assert out.clears(BINDING) and not out.sets(SESSION)
        polls = await idp_polls(stack)
        # The user approves in the app anyway: the cancelled transaction must not log anyone in.
        await identify(stack, view)
        again, _ = await status(http, stack.url)
        assert again.status == 404
        async with browser() as replay:
            for _ in range(3):
                old = await fetch(replay, "GET", f"{stack.url}/_auth/headless/status",
                                  headers={**EN, "Cookie": f"{BINDING}={cookie}"})
                assert old.status == 404, old.body
                assert not old.sets(SESSION)
                await asyncio.sleep(POLL_INTERVAL)
        assert await idp_polls(stack) == polls  # nothing polled after the cancel
        assert await private_status(http, stack.url) == 401
        assert stack.echo.requests == []


# ------------------------------------------------------------------------------------------------ load and restarts


async def test_concurrent_browser_polls_are_coalesced(tmp_path: Path) -> None:
    async with running_headless_stack(tmp_path) as stack, browser() as http:
        began = time.monotonic()
        await start(http, stack.url)
        rounds = 0
        while time.monotonic() - began < 1.5:
            answers = await asyncio.gather(*(status(http, stack.url) for _ in range(30)))
            for out, view in answers:
                assert out.status == 200 and view["status"] == "pending", (out.status, out.body)
            rounds += 1
        elapsed = time.monotonic() - began
        total = await idp_polls(stack)
        assert rounds >= 3
        assert 1 <= total <= math.ceil(elapsed / POLL_INTERVAL) + 1, (total, elapsed)
        assert await idp_polls(stack, "slow_down") == 0  # never faster than the IdP allows


async def test_transaction_survives_a_gateway_restart(tmp_path: Path) -> None:
    async with running_headless_stack(tmp_path) as stack, browser() as http:
        view = await start(http, stack.url)
        out, pending = await status(http, stack.url)
        assert pending["status"] == "pending"
        await asyncio.sleep(POLL_INTERVAL)
        out, pending = await status(http, stack.url)
        assert pending["status"] == "pending"
        saved = http.cookie_jar.filter_cookies(URL(stack.url + "/_auth/headless/status"))[BINDING].value
        await stack.gateway.stop()
        # A new process (same config, same cookie secret, same port) serves the next polls.
        async with run_gateway(stack.config, base_dir=tmp_path) as second:
            assert second.url == stack.url
            await identify(stack, view)
            out, final = await until_terminal(http, second.url)
            assert final["status"] == "complete", final
            assert out.sets(SESSION)
            assert await private_status(http, second.url) == 200
            seen = stack.echo.requests[-1]
            assert decode_header_value(seen.headers["X-Auth-Name"]) == "Åsa Öberg"
        # A third process never saw the transaction end; the binding cookie it is shown is spent all
        # the same, because the IdP used the order up (single use across replicas).
        async with run_gateway(stack.config, base_dir=tmp_path) as third, browser() as thief:
            stolen = await fetch(thief, "GET", f"{third.url}/_auth/headless/status",
                                 headers={**EN, "Cookie": f"{BINDING}={saved}"})
            for _ in range(20):
                if stolen.status != 200 or json.loads(stolen.body)["status"] != "pending":
                    break
                await asyncio.sleep(POLL_INTERVAL / 2)
                stolen = await fetch(thief, "GET", f"{third.url}/_auth/headless/status",
                                     headers={**EN, "Cookie": f"{BINDING}={saved}"})
            assert not stolen.sets(SESSION), stolen.set_cookies
            assert stolen.status == 404 or json.loads(stolen.body)["status"] == "failed", stolen.body
            assert await private_status(thief, third.url) == 401
