"""attacks.md I through the gateway's other poll entry path, ``flow: ciba`` (CIBA Core 1.0 poll mode):
T41 (the transaction is bound to the browser that started it, not to the personal number or the
``auth_req_id``) and T43 (the poll result gets the full T25/T28-T31/T33/T34 token checks). test_i_headless.py
covers the Idura headless entry; this file puts the same tables through a CIBA start and the CIBA grant.

The OP is tests/support/fake_op's FakeOP with a backchannel authentication endpoint added: it answers the
start with an ``auth_req_id`` and serves the ``urn:openid:params:grant-type:ciba`` polls from the same
per-request reply queue as the headless grant.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDict

from tests.security.helpers import assert_no_traceback
from tests.security.test_g_jose import BOMBS, SIGNATURE_TRICKS
from tests.security.test_i_headless import Case, headless_claims, t28_matrix, t29_cases, t30_cases
from tests.support.echo import EchoUpstream
from tests.support.fake_op import (
    SSN,
    FakeOP,
    HeadlessStart,
    OpStack,
    Outcome,
    fetch,
    jar,
    wait_ready,
)
from tests.support.gateway import run_gateway
from tests.support.ports import free_port
from tests.support.stack import base_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROVIDER = "se-ciba"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
START = "/_auth/headless/start"
STATUS = "/_auth/headless/status"
CANCEL = "/_auth/headless/cancel"
SESSION = "gw_session"
BINDING = "gw_session_tx"
MAX_ID_TOKEN = 16_384


class CibaOP(FakeOP):
    """FakeOP plus POST /bc-authorize; CIBA polls are answered like headless polls, keyed by auth_req_id."""

    async def _anything(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST" or request.path != "/bc-authorize":
            return await super()._anything(request)
        form = dict(parse_qsl((await request.read()).decode()))
        start = HeadlessStart(form=form, headers=CIMultiDict(request.headers), req_id=secrets.token_urlsafe(24),
                              qr_data="", auto_start_token=str(uuid.uuid4()))
        self.headless_starts.append(start)
        return web.json_response({"auth_req_id": start.req_id, "expires_in": 120})

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = dict(parse_qsl((await request.read()).decode()))
        if form.get("grant_type") != CIBA_GRANT:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        form["headless_req_id"] = form.get("auth_req_id", "")
        return await self._headless_token(form, request)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_ciba_stack() -> AsyncIterator[OpStack]:
    async with CibaOP() as op, EchoUpstream() as echo:
        op.discovery_overrides.update({
            "backchannel_authentication_endpoint": f"{op.url}/bc-authorize",
            "backchannel_token_delivery_modes_supported": ["poll"],
            "grant_types_supported": ["authorization_code", CIBA_GRANT],
        })
        config = base_config(gateway_port=free_port(), metrics_port=free_port(), issuer=op.issuer,
                             upstream=echo.url, client_secret=op.client_secret)
        provider = config["providers"][0]
        provider.update(name=PROVIDER, flow="ciba", client_id=op.client_id, scopes=["openid"], poll_interval="50ms")
        async with run_gateway(config) as gateway:
            await wait_ready(gateway.url)
            yield OpStack(gateway=gateway, echo=echo, op=op, config=config)


@pytest.fixture
def stack(shared_ciba_stack: OpStack) -> OpStack:
    shared_ciba_stack.reset()
    return shared_ciba_stack


_START_LOCK = asyncio.Lock()


class Browser:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def call(self, method: str, path: str, **kwargs: Any) -> Outcome:
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        return await fetch(self.http, method, self.url + path, headers=headers, **kwargs)

    async def start(self, stack: OpStack, login_hint: str = SSN) -> HeadlessStart:
        # One start at a time: the browser never sees the auth_req_id, so the OP's latest start is this one.
        async with _START_LOCK:
            before = len(stack.op.headless_starts)
            out = await self.call("POST", START, json={"provider": PROVIDER, "rd": "/private/x",
                                                       "login_hint": login_hint})
            assert out.status == 200, out.body
            assert out.sets(BINDING)
            assert len(stack.op.headless_starts) == before + 1
            return stack.op.headless_starts[-1]

    async def until_terminal(self, limit: float = 4.0) -> tuple[Outcome, dict[str, Any]]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            out = await self.call("GET", STATUS)
            assert out.status == 200, (out.status, out.body)
            view = json.loads(out.body)
            if view["status"] != "pending":
                return out, view
            assert not out.sets(SESSION)
            await asyncio.sleep(0.02)
        raise AssertionError("the transaction never ended")


async def test_t41_ciba_positive_control_and_login_hint(stack: OpStack) -> None:
    """The harness can succeed; the OP got the validated personal number as login_hint over CIBA."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        browser = Browser(http, stack.url)
        order = await browser.start(stack)
        assert order.form["login_hint"] == SSN and order.form["scope"] == "openid"
        stack.op.queue_headless(stack.op.sign(headless_claims(stack)), req_id=order.req_id)
        out, final = await browser.until_terminal()
        assert final["status"] == "complete" and out.sets(SESSION) and final["redirect"] == "/private/x"
        assert (await browser.call("GET", "/private/x")).status == 200
    assert stack.echo.requests[-1].headers["X-Auth-Ssn"] == SSN
    assert stack.op.headless(order.req_id).polls[-1].form["grant_type"] == CIBA_GRANT


async def test_t41_ciba_transaction_is_bound_to_the_starting_browser(stack: OpStack) -> None:
    """T41 over CIBA: a second client that knows the personal number and the auth_req_id gets 404 and no
    session, before and after the user approved; the victim alone logs in, once."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as v, aiohttp.ClientSession(cookie_jar=jar()) as a:
        victim, attacker = Browser(v, stack.url), Browser(a, stack.url)
        order = await victim.start(stack)

        async def attack() -> None:
            for method, path, kwargs in [
                ("GET", STATUS, {}),
                ("GET", f"{STATUS}?auth_req_id={order.req_id}", {}),
                ("GET", f"{STATUS}?login_hint={SSN}", {}),
                ("GET", STATUS, {"headers": {"X-Auth-Req-Id": order.req_id}}),
                ("POST", CANCEL, {"json": {"auth_req_id": order.req_id}}),
            ]:
                out = await attacker.call(method, path, **kwargs)
                assert out.status == 404, (method, path, out.status, out.body)
                assert not out.sets(SESSION) and not out.sets(BINDING)
                assert_no_traceback(out.body)

        await attack()
        polls = len(order.polls)
        stack.op.queue_headless(stack.op.sign(headless_claims(stack)), req_id=order.req_id)
        await attack()
        assert len(order.polls) == polls  # no provider poll on the attacker's behalf
        out, final = await victim.until_terminal()
        assert final["status"] == "complete" and out.sets(SESSION)
        await attack()
        assert (await attacker.call("GET", "/private/x")).status == 401
        # Same personal number, own transaction: the attacker's start gets its own auth_req_id, never the victim's.
        own = await attacker.start(stack)
        assert own.req_id != order.req_id
        view = json.loads((await attacker.call("GET", STATUS)).body)
        assert view["status"] == "pending"
    assert len(stack.echo.requests) == 0


async def _run_cases(stack: OpStack, cases: list[Case]) -> None:
    served: dict[str, str] = {}

    async def one(case: Case) -> str | None:
        async with aiohttp.ClientSession(cookie_jar=jar()) as http:
            browser = Browser(http, stack.url)
            order = await browser.start(stack)

            def reply(request: Any) -> str:
                served[case.name] = case.factory(stack, request)
                return served[case.name]

            stack.op.queue_headless(reply, req_id=order.req_id)
            out, final = await browser.until_terminal()
            private = await browser.call("GET", "/private/x")
        wanted = ("malformed_response",) if len(served.get(case.name, "")) > MAX_ID_TOKEN else case.reasons
        if not order.finished:
            return f"{case.name}: the token was never served"
        if final["status"] != "failed" or final.get("reason") not in wanted:
            return f"{case.name}: {final['status']}/{final.get('reason')}, wanted failed/{'|'.join(wanted)}"
        if out.sets(SESSION) or "redirect" in final or private.status != 401:
            return f"{case.name}: a session or a redirect ({final}, /private/x {private.status})"
        return None

    results = await asyncio.gather(*(one(c) for c in cases))
    problems = [r for r in results if r is not None]
    assert not problems, f"{len(problems)} of {len(cases)} bad tokens were accepted or mis-refused:\n" + "\n".join(
        problems)
    assert stack.echo.requests == []


async def test_t43_t25_t28_claim_matrix_through_ciba(stack: OpStack) -> None:
    """T43 (T25, T28) over CIBA: wrong aud/azp/iss, expired, future, missing or ill-typed time claims, sub."""
    await _run_cases(stack, t28_matrix())


async def test_t43_t29_t30_alg_none_and_hmac_confusion_through_ciba(stack: OpStack) -> None:
    """T43 (T29, T30) over CIBA: alg none and its spellings, HMAC keyed with every form of the OP's public key."""
    await _run_cases(stack, t29_cases() + t30_cases(stack))


async def test_t43_t31_attacker_keys_through_ciba(stack: OpStack) -> None:
    """T43 (T31) over CIBA: tokens signed with an attacker key under the OP's kid, or naming their own key by
    jku/x5u/jwk; no key is fetched from a header-named address."""
    canary = stack.op.canary_url()
    attacker = stack.op.attacker_rsa
    headers: list[dict[str, Any]] = [
        {"alg": "RS256", "kid": "rsa1"},
        {"alg": "RS256", "kid": "rsa1", "jku": canary},
        {"alg": "RS256", "x5u": canary},
        {"alg": "RS256", "jwk": attacker.jwk},
        {"alg": "RS256", "kid": secrets.token_hex(8)},
    ]
    cases = [Case(f"attacker key {json.dumps(h)[:60]}",
                  lambda s, _r, h=h: s.op.sign_with_header(h, headless_claims(s), key="attacker_rsa"))
             for h in headers]
    await _run_cases(stack, cases)
    assert stack.op.canary_hits == []


async def test_t43_t33_t34_malformed_signatures_and_bombs_through_ciba(stack: OpStack) -> None:
    """T43 (T33, T34) over CIBA: the signature tricks and JWE/PBES2/oversized tokens of test_g_jose.py."""
    cases = [Case(f"T33 {name}", factory) for name, factory in sorted(SIGNATURE_TRICKS.items())]
    cases += [Case(f"T34 {name}", factory) for name, factory in sorted(BOMBS.items())]
    await _run_cases(stack, cases)
