"""CIBA logins (OpenID CIBA Core 1.0, poll mode) through the gateway against a real OP (oidc-provider 9).

The gateway runs in-process with a ``flow: ciba`` provider pointing at tests/op/server.js started with
OP_CIBA=1 (the ``ciba_provider`` fixture). A scripted client (an aiohttp.ClientSession with a cookie jar)
uses the gateway's JSON API as the login page does: it starts a login with a national identity number,
polls the status and follows the redirect. The OP's test control endpoints stand in for the user's
authentication device: they show the pending request (binding message, login hint), approve or deny it,
and report each token-endpoint poll with its arrival time, so the gateway's poll cadence can be checked
against the interval the OP announced.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from gateway.protocol.claims import decode_header_value
from gateway.protocol.jws import parse_jwks, verify
from tests.support.echo import EchoUpstream
from tests.support.gateway import run_gateway
from tests.support.ports import free_port
from tests.support.stack import base_config

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gateway.server import RunningGateway
    from tests.interop.conftest import CibaProvider

pytestmark = pytest.mark.interop

PROVIDER = "ciba"
NAME = "Åsa Öberg"
COUNTRY = "SE"
PAGE = "/private/page"
#: Non-ASCII on purpose: the device must show exactly what the gateway was configured with.
BINDING_MESSAGE = "Logga in på eid-gateway: interop 4711"
LOGIN_HINT_FORMAT = "sub:ssn:{ssn}"
#: The gateway's own default interval; far below the OP's, whose "interval" must win (CIBA Core §7.3).
GATEWAY_POLL_INTERVAL = 0.1
SESSION_COOKIE = "gw_session"
#: How often the scripted client asks the gateway; much faster than the OP allows the gateway to ask it.
CLIENT_POLL = 0.05
#: Clock resolution and scheduling slack when comparing the OP's arrival times with its interval.
SLACK = 0.05
#: A valid Swedish personnummer (check digit and date) that names no account at the OP.
UNKNOWN_SSN = "199001011205"
TIMEOUT = aiohttp.ClientTimeout(total=30)
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


# --- the gateway under test -----------------------------------------------------------------------


def gateway_config(op: CibaProvider, upstream: str) -> dict[str, Any]:
    port = free_port()
    config = base_config(
        gateway_port=port,
        metrics_port=free_port(),
        issuer=op.issuer,
        upstream=upstream,
        client_secret="${GW_CIBA_SECRET}",
    )
    config["providers"] = [
        {
            "name": PROVIDER,
            "display_name": "CIBA test OP",
            "flow": "ciba",
            "issuer": op.issuer,
            "client_id": op.client_id,
            "client_auth": "client_secret_basic",
            "client_secret": "${GW_CIBA_SECRET}",
            "scopes": ["openid", "profile"],
            "poll_interval": f"{int(GATEWAY_POLL_INTERVAL * 1000)}ms",
            "login_hint_format": LOGIN_HINT_FORMAT,
            "binding_message": BINDING_MESSAGE,
            "claims": {"ssn": "ssn", "name": "name", "country": "country"},
        }
    ]
    config["session"]["cookie_name"] = SESSION_COOKIE
    return config


class Gateway:
    """The running gateway, the upstream behind it and the OP it talks to."""

    def __init__(self, gw: RunningGateway, echo: EchoUpstream, op: CibaProvider) -> None:
        self.url = gw.url.rstrip("/")
        self.echo = echo
        self.op = op

    async def start(self, client: aiohttp.ClientSession, login_hint: object) -> tuple[int, Any]:
        body = {"provider": PROVIDER, "rd": PAGE, "login_hint": login_hint}
        headers = {**JSON, "Origin": self.url}
        async with client.post(f"{self.url}/_auth/headless/start", json=body, headers=headers) as response:
            return response.status, await _json_or_text(response)

    async def status(self, client: aiohttp.ClientSession) -> tuple[int, Any]:
        async with client.get(f"{self.url}/_auth/headless/status", headers=JSON) as response:
            return response.status, await _json_or_text(response)

    async def cancel(self, client: aiohttp.ClientSession) -> tuple[int, Any]:
        headers = {**JSON, "Origin": self.url}
        async with client.post(f"{self.url}/_auth/headless/cancel", headers=headers) as response:
            return response.status, await _json_or_text(response)

    async def wait_for_end(self, client: aiohttp.ClientSession, limit: float = 15.0) -> dict[str, Any]:
        """Ask for the status as the login page would (only faster) until the login is no longer pending."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            status, view = await self.status(client)
            assert status == 200, f"GET /_auth/headless/status: {status} {view}\n{self.op.log_tail()}"
            if view["status"] != "pending":
                return dict(view)
            await asyncio.sleep(CLIENT_POLL)
        raise AssertionError(f"the login was still pending after {limit}s\n{self.op.log_tail()}")

    async def assert_signed_out(self, client: aiohttp.ClientSession) -> None:
        assert SESSION_COOKIE not in cookie_names(client), f"a session cookie was set: {cookie_names(client)}"
        async with client.get(f"{self.url}/_auth/userinfo", headers=JSON) as response:
            assert response.status == 401, f"GET /_auth/userinfo: {response.status}"
        before = len(requests_for(self.echo, PAGE))
        async with client.get(f"{self.url}{PAGE}", headers=HTML, allow_redirects=False) as response:
            assert response.status == 302, f"GET {PAGE} without a session: {response.status}"
            assert urlsplit(response.headers["Location"]).path == "/_auth/login", response.headers["Location"]
        assert len(requests_for(self.echo, PAGE)) == before, "the upstream was reached without a session"


@asynccontextmanager
async def running_gateway(op: CibaProvider) -> AsyncIterator[Gateway]:
    async with EchoUpstream() as echo:
        config = gateway_config(op, echo.url)
        async with run_gateway(config, environ={"GW_CIBA_SECRET": op.client_secret}) as gw:
            yield Gateway(gw, echo, op)


@pytest.fixture
async def gateway(ciba_provider: CibaProvider) -> AsyncIterator[Gateway]:
    async with running_gateway(ciba_provider) as gw:
        yield gw


@pytest.fixture
async def short_lived_gateway(short_lived_ciba_provider: CibaProvider) -> AsyncIterator[Gateway]:
    async with running_gateway(short_lived_ciba_provider) as gw:
        yield gw


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=TIMEOUT)


# --- helpers --------------------------------------------------------------------------------------


async def _json_or_text(response: aiohttp.ClientResponse) -> Any:
    text = await response.text()
    try:
        return json.loads(text)
    except ValueError:
        return text


def cookie_names(session: aiohttp.ClientSession) -> set[str]:
    return {morsel.key for morsel in session.cookie_jar if morsel.value}


def requests_for(echo: EchoUpstream, path: str) -> list[Any]:
    return [r for r in echo.requests if r.path.split("?")[0] == path]


def only_header(headers: Any, name: str) -> str:
    values = headers.getall(name, [])
    assert len(values) == 1, f"{name}: expected exactly one value, the upstream got {values}"
    return str(values[0])


async def new_ciba_request(op: CibaProvider, before: dict[str, Any]) -> dict[str, Any]:
    """The one CIBA request the OP received since ``before`` (an earlier ``op.state()``)."""
    state = await op.state()
    fresh = state["requests"][len(before["requests"]) :]
    assert len(fresh) == 1, f"expected one new CIBA request at the OP, got {fresh}\n{op.log_tail()}"
    assert state["backchannel_requests"] - before["backchannel_requests"] == 1, state
    return dict(fresh[0])


async def ciba_request(op: CibaProvider, auth_req_id: str) -> dict[str, Any]:
    state = await op.state()
    return dict(next(r for r in state["requests"] if r["auth_req_id"] == auth_req_id))


def assert_poll_cadence(request: dict[str, Any], interval: float) -> None:
    """The gateway waited ``interval`` before its first poll and between any two polls (CIBA Core §7.3)."""
    times = [request["created"], *(poll["at"] for poll in request["polls"])]
    gaps = [round(later - earlier, 3) for earlier, later in itertools.pairwise(times)]
    assert all(gap >= interval - SLACK for gap in gaps), (
        f"the gateway polled faster than the OP's interval of {interval}s: gaps {gaps} (first: since the request)"
    )


# --- the tests ------------------------------------------------------------------------------------


async def test_ciba_login_approved(gateway: Gateway) -> None:
    op = gateway.op
    before = await op.state()
    async with client() as browser:
        status, view = await gateway.start(browser, op.account_ssn)
        assert status == 200, f"POST /_auth/headless/start: {status} {view}\n{op.log_tail()}"
        assert view["status"] == "pending", view
        assert set(view) >= {"status", "acr_data", "message", "poll_after_ms", "expires_in"}, view
        assert isinstance(view["message"], str) and view["message"], view
        assert 0 < view["expires_in"] <= op.expires_in, view
        binding = cookie_names(browser)
        assert binding, "the start response set no binding cookie"
        assert SESSION_COOKIE not in binding, binding

        # The OP got one request, formatted and worded as configured, for the account with that ssn.
        request = await new_ciba_request(op, before)
        assert request["state"] == "pending", request
        assert request["client_id"] == op.client_id, request
        assert request["login_hint"] == LOGIN_HINT_FORMAT.replace("{ssn}", op.account_ssn), request
        assert request["binding_message"] == BINDING_MESSAGE, request
        assert request["scope"].split() == ["openid", "profile"], request
        # The OP's request id is the gateway's secret: not in the answer, not readable in the cookie.
        auth_req_id = request["auth_req_id"]
        assert auth_req_id not in json.dumps(view), view
        assert all(auth_req_id not in morsel.value for morsel in browser.cookie_jar)

        # Before the user has done anything the login stays pending.
        status, view = await gateway.status(browser)
        assert (status, view["status"]) == (200, "pending"), view

        # The user approves on their device; the gateway notices at its next poll.
        status, body = await op.approve(auth_req_id)
        assert status == 200, body
        final = await gateway.wait_for_end(browser)
        assert final["status"] == "complete", f"{final}\n{op.log_tail()}"
        assert final["redirect"] == PAGE, final
        assert SESSION_COOKIE in cookie_names(browser), cookie_names(browser)

        request = await ciba_request(op, auth_req_id)
        assert [p["status"] for p in request["polls"]][-1] == 200, request["polls"]
        assert_poll_cadence(request, op.interval)

        # The transaction is spent: its cookie is gone and a status call finds nothing.
        assert not binding & (cookie_names(browser) - {SESSION_COOKIE}), cookie_names(browser)
        status, _ = await gateway.status(browser)
        assert status == 404, status

        # --- what the application received ---
        async with browser.get(f"{gateway.url}{final['redirect']}", allow_redirects=False) as response:
            assert response.status == 200, f"GET {final['redirect']}: {response.status}"
        seen = requests_for(gateway.echo, PAGE)
        assert len(seen) == 1, f"the upstream saw {len(seen)} requests for {PAGE}"
        headers = seen[0].headers
        assert only_header(headers, "X-Auth-Ssn") == op.account_ssn
        assert decode_header_value(only_header(headers, "X-Auth-Name")) == NAME
        assert only_header(headers, "X-Auth-Country") == COUNTRY

        async with browser.get(f"{gateway.url}/_auth/jwks.json") as response:
            assert response.status == 200, f"GET /_auth/jwks.json: {response.status}"
            keys = parse_jwks(await response.json(content_type=None))
        claims = verify(only_header(headers, "X-Auth-Assertion"), keys, algorithms={"ES256"})
        now = time.time()
        assert claims["iss"] == gateway.url, claims
        assert claims["aud"] in ("upstream", ["upstream"]), claims
        assert now - 30 <= claims["iat"] <= now + 5, claims
        assert claims["sub"] == request["account_id"], claims  # the OP's subject for the account
        assert claims["ssn"] == op.account_ssn, claims
        assert claims["name"] == NAME, claims
        assert claims["country"] == COUNTRY, claims

        async with browser.get(f"{gateway.url}/_auth/userinfo", headers=JSON) as response:
            assert response.status == 200, f"GET /_auth/userinfo: {response.status}"
            userinfo = await response.json()
        assert userinfo.get("ssn") == op.account_ssn, userinfo
        assert userinfo.get("idp") == PROVIDER, userinfo


async def test_ciba_login_denied(gateway: Gateway) -> None:
    op = gateway.op
    before = await op.state()
    async with client() as browser:
        status, view = await gateway.start(browser, op.account_ssn)
        assert status == 200, f"POST /_auth/headless/start: {status} {view}\n{op.log_tail()}"
        request = await new_ciba_request(op, before)

        status, body = await op.deny(request["auth_req_id"])
        assert status == 200, body
        final = await gateway.wait_for_end(browser)
        assert final["status"] == "failed", final
        assert final["reason"] == "access_denied", final
        assert "redirect" not in final, final
        assert isinstance(final["message"], str) and final["message"], final

        request = await ciba_request(op, request["auth_req_id"])
        assert request["polls"][-1]["error"] == "access_denied", request["polls"]
        assert_poll_cadence(request, op.interval)
        await gateway.assert_signed_out(browser)
        status, _ = await gateway.status(browser)
        assert status == 404, status


@pytest.mark.parametrize(
    "login_hint",
    [
        pytest.param("12345", id="too-short"),
        pytest.param("196802020576", id="bad-check-digit"),
        pytest.param("sub:ssn:196802020575", id="already-formatted"),
        pytest.param("19680202-0575", id="with-hyphen"),
        pytest.param("", id="empty"),
        pytest.param(196802020575, id="json-number"),
        pytest.param(None, id="missing"),
    ],
)
async def test_invalid_login_hint_never_reaches_the_op(gateway: Gateway, login_hint: object) -> None:
    op = gateway.op
    before = await op.state()
    async with client() as browser:
        status, body = await gateway.start(browser, login_hint)
        assert status == 400, f"start with login_hint {login_hint!r}: {status} {body}"
        assert not cookie_names(browser), f"a refused start set cookies: {cookie_names(browser)}"
        status, _ = await gateway.status(browser)
        assert status == 404, status
    after = await op.state()
    assert after["backchannel_requests"] == before["backchannel_requests"], "the OP received a request"
    assert after["requests"] == before["requests"], after["requests"][len(before["requests"]) :]


async def test_gateway_never_polls_faster_than_the_op_interval(gateway: Gateway) -> None:
    """The OP asks for ``interval`` seconds between polls; the gateway's own default is far shorter, and its
    client asks every 50 ms, several times at once. The OP must see one poll per interval at most."""
    op = gateway.op
    watch = 3.5 * op.interval
    before = await op.state()
    async with client() as browser:
        status, view = await gateway.start(browser, op.account_ssn)
        assert status == 200, f"POST /_auth/headless/start: {status} {view}\n{op.log_tail()}"
        request = await new_ciba_request(op, before)
        started = time.monotonic()
        answers = 0
        while time.monotonic() - started < watch:
            results = await asyncio.gather(*(gateway.status(browser) for _ in range(4)))
            for status, view in results:
                assert (status, view["status"]) == (200, "pending"), (status, view)
            answers += len(results)
            await asyncio.sleep(CLIENT_POLL)
        elapsed = time.monotonic() - started

        after = await op.state()
        polls = (await ciba_request(op, request["auth_req_id"]))["polls"]
        assert all(p["error"] == "authorization_pending" for p in polls), polls
        # The first poll is due one interval after the request, then one per interval.
        allowed = math.floor(elapsed / op.interval + SLACK)
        assert 1 <= len(polls) <= allowed, (
            f"{len(polls)} polls at the OP in {elapsed:.2f}s with interval {op.interval}s "
            f"(the gateway answered {answers} status calls)"
        )
        assert after["token_requests"] - before["token_requests"] == len(polls), (before, after)
        assert after["unmatched_token_requests"] == before["unmatched_token_requests"], after
        assert_poll_cadence(await ciba_request(op, request["auth_req_id"]), op.interval)

        # The user gives up in the gateway's page: the gateway stops polling.
        status, view = await gateway.cancel(browser)
        assert (status, view["status"]) == (200, "cancelled"), (status, view)
        polled = len((await ciba_request(op, request["auth_req_id"]))["polls"])
        await asyncio.sleep(1.5 * op.interval)
        assert len((await ciba_request(op, request["auth_req_id"]))["polls"]) == polled
        status, _ = await gateway.status(browser)
        assert status == 404, status
        await gateway.assert_signed_out(browser)


async def test_status_needs_the_binding_cookie(gateway: Gateway) -> None:
    """Only the client that started the login can follow it and receive the session."""
    op = gateway.op
    before = await op.state()
    async with client() as browser, client() as stranger:
        status, view = await gateway.start(browser, op.account_ssn)
        assert status == 200, f"POST /_auth/headless/start: {status} {view}\n{op.log_tail()}"
        request = await new_ciba_request(op, before)

        status, body = await gateway.status(stranger)
        assert status == 404, f"status without the binding cookie: {status} {body}"
        status, body = await gateway.cancel(stranger)
        assert status == 404, f"cancel without the binding cookie: {status} {body}"

        status, body = await op.approve(request["auth_req_id"])
        assert status == 200, body
        # Long enough for the gateway to have polled the approval, had anyone been entitled to ask.
        await asyncio.sleep(op.interval + 0.5)
        for _ in range(3):
            status, body = await gateway.status(stranger)
            assert status == 404, f"status without the binding cookie: {status} {body}"
        assert (await ciba_request(op, request["auth_req_id"]))["polls"] == [], "polled for a stranger"
        await gateway.assert_signed_out(stranger)

        # The rightful client still completes its login.
        final = await gateway.wait_for_end(browser)
        assert final["status"] == "complete", f"{final}\n{op.log_tail()}"
        assert SESSION_COOKIE in cookie_names(browser)
        assert SESSION_COOKIE not in cookie_names(stranger)
        await gateway.assert_signed_out(stranger)


async def test_unknown_user_is_refused(gateway: Gateway) -> None:
    """A well-formed national identity number the OP does not know: the OP answers unknown_user_id."""
    op = gateway.op
    before = await op.state()
    async with client() as browser:
        status, body = await gateway.start(browser, UNKNOWN_SSN)
        assert status >= 400, f"start for an unknown user: {status} {body}"
        assert not cookie_names(browser), f"a refused start set cookies: {cookie_names(browser)}"
        await gateway.assert_signed_out(browser)
    after = await op.state()
    assert after["backchannel_requests"] - before["backchannel_requests"] == 1, "the OP was not asked"
    assert after["requests"] == before["requests"], "the OP opened a request for an unknown user"


async def test_unknown_user_is_not_an_internal_error(gateway: Gateway) -> None:
    async with client() as browser:
        status, body = await gateway.start(browser, UNKNOWN_SSN)
    assert status != 500, f"start for an unknown user: {status} {body}"
    assert isinstance(body, dict) and body.get("error") != "internal_error", body


async def test_ciba_login_expires(short_lived_gateway: Gateway) -> None:
    """Nobody answers on the device: the login expires when the OP's request does, and polling stops."""
    gateway = short_lived_gateway
    op = gateway.op
    before = await op.state()
    async with client() as browser:
        status, view = await gateway.start(browser, op.account_ssn)
        assert status == 200, f"POST /_auth/headless/start: {status} {view}\n{op.log_tail()}"
        assert 0 < view["expires_in"] <= op.expires_in, view
        request = await new_ciba_request(op, before)

        final = await gateway.wait_for_end(browser, limit=op.expires_in + 5)
        assert final["status"] == "expired", f"{final}\n{op.log_tail()}"
        assert "redirect" not in final, final
        request = await ciba_request(op, request["auth_req_id"])
        assert all(p["error"] == "authorization_pending" for p in request["polls"]), request["polls"]
        assert all(p["at"] < request["created"] + op.expires_in + SLACK for p in request["polls"]), (
            f"polled after the request expired: {request}"
        )
        assert_poll_cadence(request, op.interval)
        await gateway.assert_signed_out(browser)

        # Approving now is too late: the OP's request is gone, and the gateway's transaction is spent.
        status, body = await op.approve(request["auth_req_id"])
        assert status == 404, body
        status, _ = await gateway.status(browser)
        assert status == 404, status


async def test_one_approval_completes_one_login(gateway: Gateway) -> None:
    """The page may ask several times at once (two tabs, a retry): one approval still yields one login."""
    op = gateway.op
    async with client() as browser:
        status, view = await gateway.start(browser, op.account_ssn)
        assert status == 200, f"POST /_auth/headless/start: {status} {view}\n{op.log_tail()}"
        status, body = await op.approve()
        assert status == 200, body
        await asyncio.sleep(op.interval + 0.1)  # the gateway's first poll is due: it fetches the tokens
        results = await asyncio.gather(*(gateway.status(browser) for _ in range(6)))
    completed = [view for status, view in results if status == 200 and view["status"] == "complete"]
    assert len(completed) == 1, f"{len(completed)} of {len(results)} concurrent status calls completed the login"
