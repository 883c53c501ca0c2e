"""attacks.md I: the headless (poll) flow, through fake_op's Idura-style ``/headless/authorize`` and headless grant.

T41: the transaction belongs to the browser that started it. Its only handle is the sealed binding cookie
(HttpOnly, SameSite=Strict, Path=/); a client without it, with its own transaction, with a spent copy
or with a forged or foreign cookie never gets a session, and neither the provider's ``headless_req_id`` nor a
client assertion ever reaches a browser or the logs. Start and cancel refuse cross-site and non-JSON calls.

T43: the poll path validates its ID tokens exactly like the code flow: the T28 claim matrix and the T29-T31,
T33 and T34 token forms, each served as the poll result, end in ``failed``/``token_invalid`` with no session
and nothing forwarded. The variants of one family run as concurrent transactions to keep the table fast; a
failure names every variant that got through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from gateway.keys import generate_ec_pem
from gateway.protocol.claims import decode_header_value
from gateway.session.codec import Keyring
from tests.security.helpers import assert_no_traceback
from tests.security.test_g_jose import (
    BOMBS,
    HMAC_DIGESTS,
    KEY_FORMS,
    SIGNATURE_TRICKS,
    _kid_headers,
    _self_signed_cert_b64,
)
from tests.support.fake_op import (
    DROP,
    NAME,
    SSN,
    HeadlessStart,
    OpStack,
    Outcome,
    TokenReply,
    TokenRequest,
    b64,
    fetch,
    forge,
    jar,
    running_op_stack,
    wait_ready,
)
from tests.support.gateway import run_gateway
from tests.support.ports import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROVIDER = "se-bankid"
SESSION = "gw_session"
BINDING = "gw_session_tx"
STATUS = "/_auth/headless/status"
CANCEL = "/_auth/headless/cancel"
START = "/_auth/headless/start"
#: protocols.md §2.2 / gateway.protocol.poll: an id_token longer than this is refused before validation.
MAX_ID_TOKEN = 16_384
EVIL = "https://evil.example"


def headless_provider(key_file: Path) -> Callable[[dict[str, Any]], None]:
    """Turn running_op_stack's provider into an Idura headless one with private_key_jwt (protocols.md §1.2).

    No acr_values: the T43 tokens carry only the attacks.md §0 claims, so nothing but the case under test
    can make them fail (the positive controls prove it).
    """

    def customize(config: dict[str, Any]) -> None:
        provider = config["providers"][0]
        provider.pop("client_secret")
        provider.update(name=PROVIDER, display_name="BankID", flow="headless", client_auth="private_key_jwt",
                        private_key_file=str(key_file), poll_interval="50ms")

    return customize


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_headless_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpStack]:
    key_file = tmp_path_factory.mktemp("headless-op") / "client.pem"
    key_file.write_bytes(generate_ec_pem())
    async with running_op_stack(customize=headless_provider(key_file)) as stack:
        yield stack


@pytest.fixture
def stack(shared_headless_stack: OpStack) -> OpStack:
    shared_headless_stack.reset()
    return shared_headless_stack


# ------------------------------------------------------------------------------------------------ a browser


@dataclass
class Browser:
    """One user agent of its own (cookie jar), recording every answer it saw."""

    http: aiohttp.ClientSession
    url: str
    seen: list[Outcome] = field(default_factory=list)

    async def call(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                   **kwargs: Any) -> Outcome:
        out = await fetch(self.http, method, self.url + path,
                          headers={"Accept": "application/json", "Accept-Language": "en", **(headers or {})}, **kwargs)
        self.seen.append(out)
        return out

    async def start(self, stack: OpStack, rd: str = "/private/x") -> HeadlessStart:
        out = await self.call("POST", START, json={"provider": PROVIDER, "rd": rd})
        assert out.status == 200, out.body
        assert out.sets(BINDING)
        token = json.loads(out.body)["acr_data"]["autoStartToken"]
        return next(s for s in stack.op.headless_starts if s.auto_start_token == token)

    async def status(self, **kwargs: Any) -> tuple[Outcome, dict[str, Any]]:
        out = await self.call("GET", STATUS, **kwargs)
        return out, (json.loads(out.body) if out.status == 200 else {})

    async def until_terminal(self, limit: float = 20.0) -> tuple[Outcome, dict[str, Any]]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            out, view = await self.status()
            assert out.status == 200, (out.status, out.body)
            if view["status"] != "pending":
                return out, view
            assert not out.sets(SESSION)
            await asyncio.sleep(0.02)
        raise AssertionError("the transaction never ended")

    def binding(self) -> str:
        return self.http.cookie_jar.filter_cookies(URL(self.url + STATUS))[BINDING].value

    async def private(self) -> Outcome:
        return await self.call("GET", "/private/x")


class Browsers:
    def __init__(self, stack: OpStack) -> None:
        self._stack = stack
        self._exit = AsyncExitStack()
        self.all: list[Browser] = []

    async def __aenter__(self) -> Browsers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._exit.aclose()

    async def new(self) -> Browser:
        http = await self._exit.enter_async_context(aiohttp.ClientSession(cookie_jar=jar()))
        browser = Browser(http, self._stack.url)
        self.all.append(browser)
        return browser


def with_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{BINDING}={value}"}


def assert_no_login(out: Outcome) -> None:
    assert not out.sets(SESSION), out.set_cookies
    assert not out.sets(BINDING), out.set_cookies
    assert_no_traceback(out.body)


def headless_claims(stack: OpStack, **overrides: Any) -> dict[str, Any]:
    """attacks.md §0 BASE for a headless login: no nonce, none was sent (protocols.md §1.3)."""
    return stack.op.claims(DROP, **overrides)


async def metric(stack: OpStack, name: str, **labels: str) -> float:
    assert stack.gateway.metrics_url is not None
    async with aiohttp.ClientSession() as http, http.get(stack.gateway.metrics_url) as resp:
        text = await resp.text()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)


# ------------------------------------------------------------------------------------------------ T41


async def test_t41_client_without_the_binding_cookie_gets_404_and_no_session(stack: OpStack) -> None:
    async with Browsers(stack) as browsers:
        victim, attacker = await browsers.new(), await browsers.new()
        order = await victim.start(stack)
        assert (await victim.status())[1]["status"] == "pending"
        req_id = order.req_id

        async def attack() -> None:
            for method, path, kwargs in [
                ("GET", STATUS, {}),
                ("GET", f"{STATUS}?tx={req_id}", {}),
                ("GET", f"{STATUS}?headless_req_id={req_id}", {}),
                ("GET", STATUS, {"headers": {"X-Headless-Req-Id": req_id}}),
                ("POST", CANCEL, {"json": {"tx": req_id}}),
                ("POST", CANCEL, {"json": {"headless_req_id": req_id}}),
                ("POST", CANCEL, {}),
                ("GET", "/_auth/headless/qr.svg", {}),
            ]:
                out = await attacker.call(method, path, **kwargs)
                assert out.status == 404, (method, path, out.status, out.body)
                assert_no_login(out)

        await attack()
        polls_before = len(order.polls)
        stack.op.queue_headless(stack.op.sign(headless_claims(stack)), req_id=req_id)
        await attack()  # the user has approved: still nothing for the attacker, and no IdP poll on its behalf
        assert len(order.polls) == polls_before
        out, final = await victim.until_terminal()
        assert final["status"] == "complete" and out.sets(SESSION)
        await attack()
        assert (await attacker.private()).status == 401
        assert (await victim.private()).status == 200
        assert len(stack.echo.requests) == 1  # the victim's request only


async def test_t41_own_transaction_never_receives_another_browsers_session(stack: OpStack) -> None:
    async with Browsers(stack) as browsers:
        victim, attacker = await browsers.new(), await browsers.new()
        victim_order = await victim.start(stack)
        attacker_order = await attacker.start(stack)
        assert attacker_order.req_id != victim_order.req_id
        stack.op.queue_headless(stack.op.sign(headless_claims(stack, sub="victim")), req_id=victim_order.req_id)

        async def attacker_polls(rounds: int) -> None:
            for _ in range(rounds):
                # The victim's request id in every place a handle might be read from: all ignored.
                out, view = await attacker.status(params={"tx": victim_order.req_id},
                                                  headers={"X-Headless-Req-Id": victim_order.req_id})
                assert out.status == 200 and view["status"] == "pending", (out.status, view)
                assert not out.sets(SESSION)
                await asyncio.sleep(0.03)

        (out, final), _ = await asyncio.gather(victim.until_terminal(), attacker_polls(10))
        assert final["status"] == "complete" and out.sets(SESSION)
        await attacker_polls(5)
        assert not attacker_order.finished and attacker_order.polls  # polled with its own id, never answered
        assert (await attacker.private()).status == 401
        assert (await victim.private()).status == 200
        assert len(stack.echo.requests) == 1
        assert decode_header_value(stack.echo.requests[0].headers["X-Auth-Name"]) == NAME


async def test_t41_binding_cookie_is_single_use(stack: OpStack) -> None:
    async with Browsers(stack) as browsers:
        victim, thief = await browsers.new(), await browsers.new()
        order = await victim.start(stack)
        first = victim.binding()
        assert (await victim.status())[1]["status"] == "pending"
        last = victim.binding()
        stack.op.queue_headless(stack.op.sign(headless_claims(stack)), req_id=order.req_id)
        out, final = await victim.until_terminal()
        assert final["status"] == "complete" and out.sets(SESSION) and out.clears(BINDING)
        for copied in (first, last):
            for method, path in (("GET", STATUS), ("POST", CANCEL), ("GET", "/_auth/headless/qr.svg")):
                replay = await thief.call(method, path, headers=with_cookie(copied))
                assert replay.status == 404, (method, path, replay.body)
                assert_no_login(replay)
        assert (await victim.status())[0].status == 404
        assert (await thief.private()).status == 401


COPIES = 8


async def test_t41_one_approval_gives_one_session_even_to_simultaneous_copies(stack: OpStack) -> None:
    """Two holders of the same binding cookie poll at the moment the token arrives: one session, not two."""
    async with Browsers(stack) as browsers:
        victim, thief = await browsers.new(), await browsers.new()
        order = await victim.start(stack)
        copied = victim.binding()
        stack.op.queue_headless(stack.op.sign(headless_claims(stack)), req_id=order.req_id)
        # Open the copies' connections first, so that every request reaches the gateway at once, and let
        # the provider take a realistic 200 ms to answer the poll that carries the token.
        await asyncio.gather(*(thief.call("GET", "/_auth/healthz") for _ in range(COPIES)))
        stack.op.headless_poll_delay = 0.2
        await asyncio.sleep(0.1)  # the first poll is due
        answers = await asyncio.gather(victim.status(), *(thief.status(headers=with_cookie(copied))
                                                          for _ in range(COPIES)))
        sessions = [("victim" if i == 0 else f"copy {i}") for i, (out, _) in enumerate(answers) if out.sets(SESSION)]
        assert len(order.polls) == 1
        assert len(sessions) == 1, f"one approval issued {len(sessions)} sessions: {sessions}"
        for out, view in answers:
            assert out.status == 404 or view["status"] in ("pending", "complete"), (out.status, out.body)


def _flip(value: str, index: int) -> str:
    return value[:index] + ("A" if value[index] != "A" else "B") + value[index + 1:]


async def test_t41_tampered_foreign_and_stale_binding_cookies_are_404(stack: OpStack) -> None:
    async with Browsers(stack) as browsers:
        victim, attacker = await browsers.new(), await browsers.new()
        order = await victim.start(stack)
        genuine = victim.binding()
        now = time.time()
        tx = {"v": 1, "k": "headless", "p": PROVIDER, "r": order.req_id, "c": now - 1, "e": now + 100, "i": 0.05,
              "n": now - 1, "s": "pending", "np": 0, "ne": 0}
        own = Keyring([stack.config["session"]["secret"]])
        foreign = Keyring(["another-deployment-secret-0123456789abcdef"])
        forged = {
            "flip in nonce": _flip(genuine, 12),
            "flip in middle": _flip(genuine, len(genuine) // 2),
            "flip last": _flip(genuine, -1),
            "truncated half": genuine[: len(genuine) // 2],
            "truncated by one": genuine[:-1],
            "AAAA": "AAAA",
            "equals": "=",
            "prefix only": "v1.",
            "doubled": genuine + genuine,
            "another deployment's key": foreign.seal({"t": tx, "r": "/private/x", "exp": now + 300}, purpose="poll"),
            "sealed for the session purpose": own.seal({"t": tx, "r": "/private/x", "exp": now + 300},
                                                       purpose="session"),
            "sealed for the login purpose": own.seal({"t": tx, "r": "/private/x", "exp": now + 300}, purpose="login"),
            "expired seal": own.seal({"t": tx, "r": "/private/x", "exp": now - 1}, purpose="poll"),
            "no return path": own.seal({"t": tx, "exp": now + 300}, purpose="poll"),
            "transaction not a dict": own.seal({"t": order.req_id, "r": "/x", "exp": now + 300}, purpose="poll"),
        }
        polls = len(order.polls)
        for name, value in forged.items():
            for method, path in (("GET", STATUS), ("POST", CANCEL)):
                out = await attacker.call(method, path, headers=with_cookie(value))
                assert out.status == 404, (name, method, out.status, out.body)
                assert_no_login(out)
        assert len(order.polls) == polls, "a refused cookie made the gateway poll the provider"
        # The binding cookie is no session cookie either (purpose binding, the other way round).
        as_session = await attacker.call("GET", "/private/x", headers={"Cookie": f"{SESSION}={genuine}"})
        assert as_session.status == 401 and not as_session.sets(SESSION)
        # Positive control: the same forging harness with the gateway's own key and purpose is accepted,
        # so each refusal above is the cookie check at work.
        control = await attacker.call("GET", STATUS, headers=with_cookie(
            own.seal({"t": tx, "r": "/private/x", "exp": now + 300}, purpose="poll")))
        assert control.status == 200 and json.loads(control.body)["status"] == "pending", control.body
        assert (await victim.status())[1]["status"] == "pending"  # the victim's transaction is untouched
        assert stack.echo.requests == []


async def test_t41_binding_cookie_attributes(stack: OpStack) -> None:
    async with Browsers(stack) as browsers:
        browser = await browsers.new()
        await browser.start(stack)
        start = browser.seen[-1]
        cookie = start.set_cookies[BINDING]
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/"  # a __Host- cookie (https) must have Path=/; see the https test below
        assert not cookie["domain"]
        assert 0 < int(cookie["max-age"]) <= 120 + 60 + 5  # the order's lifetime plus a minute, no more
        # A new login ends the old session (attacks.md T37).
        assert start.clears(SESSION)


async def test_t41_binding_cookie_is_valid_for_a_browser_on_https(stack: OpStack) -> None:
    """With an https public_url the cookie names get the __Host- prefix; a browser drops a __Host- cookie
    unless it is Secure, has no Domain and has Path=/ (RFC 6265bis §4.1.3.2), so the binding cookie must
    either keep those rules or not use the prefix."""
    config = json.loads(json.dumps(stack.config))
    config["public_url"] = "https://app.example.test"
    config["listen"] = f"127.0.0.1:{free_port()}"
    config["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
    async with run_gateway(config) as gateway:
        await wait_ready(gateway.url)
        async with aiohttp.ClientSession(cookie_jar=jar()) as http:
            out = await fetch(http, "POST", gateway.url + START, json={"provider": PROVIDER, "rd": "/x"},
                              headers={"Origin": "https://app.example.test"})
    assert out.status == 200, out.body
    raw = [h for h in out.headers.getall("Set-Cookie", []) if "_tx=" in h and "Max-Age=0" not in h]
    assert len(raw) == 1, out.headers.getall("Set-Cookie", [])
    name = raw[0].split("=", 1)[0]
    cookie = out.set_cookies[name]
    assert cookie["secure"] is True and cookie["httponly"] is True and cookie["samesite"] == "Strict"
    if name.startswith("__Host-"):
        assert cookie["path"] == "/" and not cookie["domain"], (
            f"{name} has Path={cookie['path']}: browsers reject a __Host- cookie whose Path is not /")
    elif name.startswith("__Secure-"):
        assert not cookie["domain"]


async def test_t41_no_request_id_assertion_or_token_reaches_the_browser_or_the_logs(
        stack: OpStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with Browsers(stack) as browsers:
        user, other = await browsers.new(), await browsers.new()
        page = await user.call("GET", f"/_auth/headless?provider={PROVIDER}&rd=/private/x",
                               headers={"Accept": "text/html"})
        assert page.status == 200
        order = await user.start(stack)
        for _ in range(3):
            assert (await user.status())[1]["status"] == "pending"
            await asyncio.sleep(0.05)
        await user.call("GET", "/_auth/headless/qr.svg")
        await user.call("GET", f"/_auth/headless?provider={PROVIDER}&rd=/private/x", headers={"Accept": "text/html"})
        await user.call("GET", "/_auth/static/headless.js")
        id_token = stack.op.sign(headless_claims(stack))
        stack.op.queue_headless(id_token, req_id=order.req_id)
        out, final = await user.until_terminal()
        assert final["status"] == "complete"
        await user.private()
        other_order = await other.start(stack)
        await other.status()
        await other.call("POST", CANCEL, json={})
        assertions = stack.op.client_assertions()
        assert len(assertions) >= 4, "the provider uses private_key_jwt: every call carries an assertion"
        secrets_ = {"headless_req_id": order.req_id, "other headless_req_id": other_order.req_id,
                    "id_token": id_token, "id_token signature": id_token.rsplit(".", 1)[1]}
        for i, assertion in enumerate(assertions):
            secrets_[f"client assertion {i}"] = assertion
            secrets_[f"client assertion {i} signature"] = assertion.rsplit(".", 1)[1]
        answers = user.seen + other.seen
        for out in answers:
            text = out.body + "\n" + "\n".join(f"{k}: {v}" for k, v in out.headers.items())
            for label, secret in secrets_.items():
                assert secret not in text, f"{label} reached the browser ({out.status})"
        logged = log_text(caplog)
        assert "poll_login_completed" in logged
        for label, secret in secrets_.items():
            assert secret not in logged, f"{label} was logged"
        # protocols.md §5 item 12: no QR payload or autostart token in the logs either.
        for label, secret in (("qrData", order.qr_data), ("autoStartToken", order.auto_start_token)):
            assert secret not in logged, f"{label} was logged"


CROSS_SITE = [
    {"Origin": EVIL},
    {"Origin": "null"},
    {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
    {"Origin": "http://127.0.0.1"},
    {"Origin": "https://app.example.test"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
]


@pytest.mark.parametrize("headers", CROSS_SITE, ids=lambda h: json.dumps(h))
async def test_t41_cross_site_start_and_cancel_are_403(stack: OpStack, headers: dict[str, str]) -> None:
    async with Browsers(stack) as browsers:
        victim = await browsers.new()
        order = await victim.start(stack)
        started = len(stack.op.headless_starts)
        refused = await victim.call("POST", START, json={"provider": PROVIDER, "rd": "/x"}, headers=headers)
        assert refused.status == 403, refused.body
        assert_no_login(refused)
        assert SESSION not in refused.set_cookies  # a cross-site start must not end the session either
        assert len(stack.op.headless_starts) == started
        cancel = await victim.call("POST", CANCEL, json={}, headers=headers)
        assert cancel.status == 403, cancel.body
        assert BINDING not in cancel.set_cookies
        assert (await victim.status())[1]["status"] == "pending"  # not cancelled
        assert order.req_id == stack.op.headless_starts[-1].req_id


BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("text/plain JSON", {"data": json.dumps({"provider": PROVIDER}), "headers": {"Content-Type": "text/plain"}}),
    ("form", {"data": {"provider": PROVIDER}}),
    ("multipart", {"data": aiohttp.FormData({"provider": PROVIDER}, default_to_multipart=True)}),
    ("no content type", {"data": json.dumps({"provider": PROVIDER}).encode(),
                         "headers": {"Content-Type": ""}}),
    ("json with a suffix type", {"data": json.dumps({"provider": PROVIDER}),
                                 "headers": {"Content-Type": "application/json-patch+json"}}),
    ("over 4 KiB", {"json": {"provider": PROVIDER, "rd": "/" + "a" * 4096}}),
    ("64 KiB", {"json": {"provider": PROVIDER, "pad": "a" * 65_000}}),
    ("not JSON", {"data": "{provider: se-bankid}", "headers": {"Content-Type": "application/json"}}),
    ("JSON list", {"json": [PROVIDER]}),
    ("unknown provider", {"json": {"provider": "dev"}}),
    ("provider not a string", {"json": {"provider": [PROVIDER]}}),
]


@pytest.mark.parametrize(("case", "kwargs"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
async def test_t41_start_takes_only_a_small_json_object(stack: OpStack, case: str, kwargs: dict[str, Any]) -> None:
    async with Browsers(stack) as browsers:
        browser = await browsers.new()
        out = await browser.call("POST", START, **kwargs)
        assert out.status == 400, (case, out.status, out.body)
        assert_no_login(out)
        assert stack.op.headless_starts == []


async def test_t41_positive_control_json_with_charset_starts(stack: OpStack) -> None:
    async with Browsers(stack) as browsers:
        browser = await browsers.new()
        out = await browser.call("POST", START, data=json.dumps({"provider": PROVIDER, "rd": "/x"}),
                                 headers={"Content-Type": "application/json; charset=utf-8",
                                          "Origin": stack.config["public_url"]})
        assert out.status == 200 and out.sets(BINDING), out.body


# ------------------------------------------------------------------------------------------------ T43

TokenFactory = Callable[[OpStack, TokenRequest], str]


@dataclass
class Case:
    name: str
    factory: TokenFactory
    #: Refusals that count as correct; oversized tokens are stopped before validation (malformed_response).
    reasons: tuple[str, ...] = ("token_invalid",)


async def run_cases(stack: OpStack, cases: list[Case], caplog: pytest.LogCaptureFixture | None = None) -> None:
    """Every case as its own browser and transaction, concurrently; all must end failed with no session."""
    failures_before = await metric(stack, "gateway_token_validation_failures_total", provider=PROVIDER)
    served: dict[str, str] = {}
    problems: list[str] = []

    async def one(browsers: Browsers, case: Case) -> str | None:
        browser = await browsers.new()
        order = await browser.start(stack)

        def reply(request: TokenRequest) -> str:
            served[case.name] = case.factory(stack, request)
            return served[case.name]

        stack.op.queue_headless(reply, req_id=order.req_id)
        started = time.monotonic()
        out, final = await browser.until_terminal()
        took = time.monotonic() - started
        private = await browser.private()
        reason = final.get("reason")
        if len(served.get(case.name, "")) > MAX_ID_TOKEN:
            wanted: tuple[str, ...] = ("malformed_response",)
        else:
            wanted = case.reasons
        if not order.finished:
            return f"{case.name}: the token was never served"
        if final["status"] != "failed" or reason not in wanted:
            return f"{case.name}: {final['status']}/{reason}, wanted failed/{'|'.join(wanted)}"
        if out.sets(SESSION) or not out.clears(BINDING) or "redirect" in final:
            return f"{case.name}: cookies {dict(out.set_cookies)} / {final}"
        if private.status != 401:
            return f"{case.name}: /private/x answered {private.status}"
        # Terminal on the provider's first answer: never polled again (a count, not a wall-clock bound,
        # which failed on a loaded CI machine although the gateway behaved).
        if len(order.polls) != 1:
            return f"{case.name}: the provider was polled {len(order.polls)} times ({took:.2f}s), wanted exactly once"
        return None

    if caplog is not None:
        caplog.set_level(logging.DEBUG)
    async with Browsers(stack) as browsers:
        results = await asyncio.gather(*(one(browsers, c) for c in cases))
    problems = [r for r in results if r is not None]
    assert not problems, f"{len(problems)} of {len(cases)} bad tokens were not refused cleanly:\n" + "\n".join(
        problems)
    assert stack.echo.requests == []
    token_invalid = sum(1 for c in cases if len(served[c.name]) <= MAX_ID_TOKEN and "token_invalid" in c.reasons)
    failures = await metric(stack, "gateway_token_validation_failures_total", provider=PROVIDER)
    assert failures - failures_before == token_invalid
    if caplog is not None:
        logged = log_text(caplog)
        for name, token in served.items():
            if len(token) > 40:
                assert token not in logged and token.rsplit(".", 1)[-1][-40:] not in logged, f"{name} was logged"


def claims_case(name: str, **overrides: Any) -> Case:
    def factory(s: OpStack, _r: TokenRequest) -> str:
        return s.op.sign(headless_claims(s, **overrides))

    return Case(name, factory)


async def test_t43_positive_controls_complete(stack: OpStack) -> None:
    """The harness can succeed: valid RS256 and ES256 tokens, with and without a null nonce, log in."""
    tokens: dict[str, Callable[[], str]] = {
        "rs256": lambda: stack.op.sign(headless_claims(stack)),
        "es256": lambda: stack.op.sign(headless_claims(stack), "ec"),
        "null nonce (imported factories)": lambda: stack.op.sign(stack.op.claims(None)),
        "aud list with azp": lambda: stack.op.sign(headless_claims(stack, aud=[stack.op.client_id, "o"],
                                                                   azp=stack.op.client_id)),
    }
    async with Browsers(stack) as browsers:
        for name, make in tokens.items():
            browser = await browsers.new()
            order = await browser.start(stack)
            stack.op.queue_headless(make(), req_id=order.req_id)
            out, final = await browser.until_terminal()
            assert final["status"] == "complete", (name, final)
            assert out.sets(SESSION) and final["redirect"] == "/private/x"
            assert (await browser.private()).status == 200
            seen = stack.echo.requests[-1]
            assert seen.headers["X-Auth-Ssn"] == SSN


def t28_matrix() -> list[Case]:
    now = int(time.time())
    overrides: list[tuple[str, dict[str, Any]]] = [
        ("aud other", {"aud": "other"}),
        ("aud list without us", {"aud": ["other", "third"]}),
        ("aud list without azp", {"aud": ["gw-test", "other"]}),
        ("aud empty list", {"aud": []}),
        ("aud int", {"aud": 1}),
        ("aud missing", {"aud": DROP}),
        ("aud case", {"aud": "GW-TEST"}),
        ("azp other", {"azp": "other"}),
        ("azp other with list", {"aud": ["gw-test", "other"], "azp": "other"}),
        ("exp past", {"exp": now - 120}),
        ("exp just past skew", {"exp": now - 61}),
        ("iat future", {"iat": now + 3600}),
        ("iat beyond skew", {"iat": now + 120}),
        ("nbf future", {"nbf": now + 3600}),
        ("nbf beyond skew", {"nbf": now + 120}),
        ("exp missing", {"exp": DROP}),
        ("iat missing", {"iat": DROP}),
        ("sub missing", {"sub": DROP}),
        ("sub empty", {"sub": ""}),
        ("sub not a string", {"sub": 1}),
        ("exp string", {"exp": "9999999999"}),
        ("iat string", {"iat": str(now)}),
        ("nbf string", {"nbf": str(now)}),
        ("exp bool", {"exp": True}),
        ("exp null", {"exp": None}),
        ("exp NaN", {"exp": float("nan")}),
        ("exp Infinity", {"exp": float("inf")}),
        ("iat NaN", {"iat": float("nan")}),
        ("nbf NaN", {"nbf": float("nan")}),
        # attacks.md T25 through the poll path: exact issuer comparison.
        ("iss other", {"iss": "https://evil-idp.test"}),
        ("iss trailing slash", {"iss": "{issuer}/"}),
        ("iss prefix", {"iss": "{issuer}0"}),
        ("iss https", {"iss": "{issuer_https}"}),
        ("iss missing", {"iss": DROP}),
        ("iss list", {"iss": ["{issuer}"]}),
    ]
    # attacks.md T28's nonce rows do not apply: the headless flow sends no nonce (protocols.md §1.3).
    cases = []
    for name, values in overrides:
        def factory(s: OpStack, _r: TokenRequest, values: dict[str, Any] = values) -> str:
            fill = {"{issuer}": s.op.issuer, "{issuer}/": s.op.issuer + "/", "{issuer}0": s.op.issuer + "0",
                    "{issuer_https}": s.op.issuer.replace("http://", "https://")}
            resolved = {k: ([fill.get(x, x) for x in v] if isinstance(v, list) else fill.get(v, v))
                        if isinstance(v, (str, list)) else v for k, v in values.items()}
            return s.op.sign(headless_claims(s, **resolved))

        cases.append(Case(name, factory))
    return cases


async def test_t43_t28_claim_matrix_through_the_poll_path(stack: OpStack, caplog: pytest.LogCaptureFixture) -> None:
    await run_cases(stack, t28_matrix(), caplog)


T29_HEADERS: list[dict[str, Any]] = [
    {"alg": "none", "typ": "JWT"}, {"alg": "None", "typ": "JWT"}, {"alg": "NONE", "typ": "JWT"},
    {"alg": "nOnE", "typ": "JWT"}, {"alg": "none", "kid": "rsa1"}, {"alg": "", "kid": "rsa1"},
    {"alg": None, "kid": "rsa1"}, {"kid": "rsa1"}, {"typ": "JWT"}, {"alg": ["RS256"], "kid": "rsa1"},
    {"alg": "RS256 ", "kid": "rsa1"}, {"alg": "rs256", "kid": "rsa1"},
]


def t29_cases() -> list[Case]:
    cases = []
    for header in T29_HEADERS:
        for signature in ("empty", "hmac", "real"):
            def factory(s: OpStack, _r: TokenRequest, header: dict[str, Any] = header,
                        signature: str = signature) -> str:
                claims = headless_claims(s)
                if signature == "empty":
                    return forge(header, claims)
                if signature == "hmac":
                    return forge(header, claims, hmac_key=b"secret")
                si = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
                return si + "." + b64(s.op.rsa.raw_signature(si.encode()))

            cases.append(Case(f"{json.dumps(header)} {signature}", factory))
    return cases


def t30_cases(stack: OpStack) -> list[Case]:
    cases = []
    for alg, digest in sorted(HMAC_DIGESTS.items()):
        for key, form in KEY_FORMS:
            pair = stack.op.rsa if key == "rsa" else stack.op.ec
            secret = pair.public_forms()[form]

            def factory(s: OpStack, _r: TokenRequest, alg: str = alg, digest: Any = digest, kid: str = pair.kid,
                        secret: bytes = secret) -> str:
                return forge({"alg": alg, "kid": kid, "typ": "JWT"}, headless_claims(s), hmac_key=secret,
                             digest=digest)

            cases.append(Case(f"{alg} with the {key} key as {form}", factory))
    return cases


async def test_t43_t29_t30_alg_none_and_hmac_confusion_through_the_poll_path(stack: OpStack) -> None:
    await run_cases(stack, t29_cases() + t30_cases(stack))


async def test_t43_t31_header_driven_keys_through_the_poll_path(stack: OpStack) -> None:
    jwks_before = stack.op.jwks_fetches
    cases = []
    for index, extra in enumerate(_kid_headers(stack)):
        header = {"alg": "RS256", "typ": "JWT", **extra}
        if header.get("x5c") == ["{x5c}"]:
            header["x5c"] = [_self_signed_cert_b64(stack)]

        def factory(s: OpStack, _r: TokenRequest, header: dict[str, Any] = header) -> str:
            return s.op.sign_with_header(header, headless_claims(s), key="attacker_rsa")

        cases.append(Case(f"{index}: {json.dumps(header)[:80]}", factory))
    await run_cases(stack, cases)
    assert stack.op.canary_hits == []
    assert stack.op.jwks_fetches - jwks_before <= 1
    assert {r.path for r in stack.op.requests} <= {"/headless/authorize", "/token", "/jwks"}


async def test_t43_t33_t34_malformed_signatures_and_bombs_through_the_poll_path(stack: OpStack) -> None:
    cases = [Case(f"T33 {name}", factory) for name, factory in sorted(SIGNATURE_TRICKS.items())]
    cases += [Case(f"T34 {name}", factory) for name, factory in sorted(BOMBS.items())]
    await run_cases(stack, cases)


async def test_t43_broken_poll_answers_fail_closed(stack: OpStack) -> None:
    """Token responses that carry no usable id_token end the transaction without a session."""
    replies: dict[str, TokenReply] = {
        "no id_token": TokenReply(body={"access_token": "x", "token_type": "Bearer"}),
        "empty id_token": TokenReply(body={"id_token": ""}),
        "id_token int": TokenReply(body={"id_token": 123}),
        "token_type mac": TokenReply(body={"id_token": "a.b.c", "token_type": "mac"}),
        "not json": TokenReply(body="not json"),
        "a list": TokenReply(body=["a list"]),
        "1 MB id_token": TokenReply(body={"token_type": "Bearer", "id_token": "e" * 1_048_576}),
        "302": TokenReply(status=302, body=""),
        "unknown error": TokenReply(status=400, body={"error": "something_new"}),
        "invalid_client": TokenReply(status=401, body={"error": "invalid_client"}),
    }
    async with Browsers(stack) as browsers:
        async def one(name: str, reply: TokenReply) -> str | None:
            browser = await browsers.new()
            order = await browser.start(stack)
            stack.op.queue_headless(reply, req_id=order.req_id)
            out, final = await browser.until_terminal()
            if final["status"] != "failed" or out.sets(SESSION) or (await browser.private()).status != 401:
                return f"{name}: {final}"
            return None

        problems = [p for p in await asyncio.gather(*(one(n, r) for n, r in replies.items())) if p]
    assert not problems, "\n".join(problems)
    assert stack.echo.requests == []

