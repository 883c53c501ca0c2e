"""attacks.md K: metrics are not on the public listener and carry no personal data or secrets (T48); logs
never hold codes, tokens, cookies or a full national ID number, and stay one JSON line per event (T50)."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import aiohttp
import pytest

from gateway.logs import JsonFormatter
from tests.security.helpers import raw_http, request_bytes
from tests.support.fake_op import SSN, OpStack, TokenReply, begin_login, callback_with, fetch, finish_login, jar

pytestmark = pytest.mark.asyncio(loop_scope="module")

SUB = "sub-7f3a9c1e5b"
NAME = "Zoë Quixotic-Åberg"


async def _login_and_collect_secrets(stack: OpStack) -> dict[str, str]:
    """A complete login with known secrets, a failed login with crafted values, then a logout."""
    secrets: dict[str, str] = {}
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, stack, "/private/echo")
        token = stack.op.sign(stack.op.claims(flow.nonce, sub=SUB, name=NAME))
        stack.op.queue(TokenReply(body={"id_token": token, "access_token": "AT-9d8e7f6a5b4c3d2e1f",
                                        "refresh_token": "RT-1a2b3c4d5e6f7a8b9c", "token_type": "Bearer"}))
        secrets["login cookie"] = flow.start.set_cookies["gw_session_login"].value
        done = await finish_login(http, flow)
        assert done.status == 302 and done.sets("gw_session"), done.body[:300]
        secrets["session cookie"] = done.set_cookies["gw_session"].value
        assert (await fetch(http, "GET", f"{stack.url}/private/echo")).status == 200
        secrets["assertion"] = stack.echo.requests[-1].headers["X-Auth-Assertion"]
        secrets.update({
            "code": flow.authorization.code, "state": flow.state, "nonce": flow.nonce, "id_token": token,
            "id_token signature": token.rsplit(".", 1)[1], "access token": "AT-9d8e7f6a5b4c3d2e1f",
            "refresh token": "RT-1a2b3c4d5e6f7a8b9c", "full ssn": SSN,
            "code_verifier": stack.op.token_requests[-1].form["code_verifier"],
            "client secret": stack.op.client_secret,
        })
        # A failed login whose parameters carry attacker-chosen text.
        bad = await begin_login(http, stack)
        crafted = callback_with(bad, code=None, error="ssn199003152387\r\nFAKE", error_description="x\ny")
        assert (await fetch(http, "GET", crafted)).status in (400, 401)
        bad = await begin_login(http, stack)
        stack.op.queue_claims(name="Eve\nINFO login_completed ssn=190001010000")
        assert (await finish_login(http, bad)).status in (401, 403)
        secrets["failed code"] = bad.authorization.code
        assert (await fetch(http, "POST", f"{stack.url}/_auth/logout")).status == 303
    return secrets


# ------------------------------------------------------------------------------------------------ T48


@pytest.mark.parametrize("target", ["/metrics", "/metrics/../metrics", "/public/../metrics", "/_auth/metrics",
                                    "/_auth/../metrics", "/metrics?format=prometheus", "/METRICS"])
async def test_t48_gateway_metrics_are_not_served_on_the_public_listener(op_stack: OpStack, target: str) -> None:
    for accept in ("text/html", "text/plain", "application/json"):
        raw = await raw_http(op_stack.port, request_bytes(target, accept=accept))
        assert raw.status in (302, 401, 404), raw.text[:200]
        assert "gateway_requests" not in raw.text and "# HELP" not in raw.text
    assert op_stack.echo.requests == []


async def test_t48_with_a_session_metrics_is_just_an_upstream_path(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        await _login_and_collect_secrets(op_stack)
        flow = await begin_login(http, op_stack)
        assert (await finish_login(http, flow)).sets("gw_session")
        answer = await fetch(http, "GET", f"{op_stack.url}/metrics")
    assert "gateway_requests" not in answer.body and "# HELP" not in answer.body
    assert op_stack.echo.requests[-1].path == "/metrics"  # the application's own path, behind auth


async def test_t48_metrics_listener_is_separate_and_holds_no_personal_data(op_stack: OpStack) -> None:
    secrets = await _login_and_collect_secrets(op_stack)
    # Also push attacker-chosen text at every labelled code path.
    async with aiohttp.ClientSession() as http:
        for path in ("/_auth/callback/evilprovider?code=c&state=s", "/_auth/callback/dev?state=ssn199003152387",
                     "/_auth/login?provider=evilprovider", "/private/x"):
            await fetch(http, "GET", f"{op_stack.url}{path}", headers={"Cookie": "gw_session=v1.AAAA"})
        assert op_stack.gateway.metrics_url is not None
        metrics_host = urlsplit(op_stack.gateway.metrics_url)
        assert metrics_host.port != op_stack.port
        assert metrics_host.hostname == "127.0.0.1"
        async with http.get(op_stack.gateway.metrics_url) as resp:
            assert resp.status == 200
            text = await resp.text()
    assert "gateway_logins_completed" in text
    for label, value in {**secrets, "sub": SUB, "name": NAME, "encoded name": "Zo%C3%AB", "ssn birth part": SSN[:8],
                         "provider": "evilprovider", "crafted": "ssn199003152387"}.items():
        assert value not in text, f"{label} appears in the metrics"
    assert "Zoë" not in text and "Åberg" not in text


# ------------------------------------------------------------------------------------------------ T50


async def test_t50_logs_hold_no_secrets_and_stay_one_json_line(op_stack: OpStack,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = await _login_and_collect_secrets(op_stack)
    for target in ("/x%0d%0aFAKE", "/x%0aINFO%20login%20ok", "/private/%E2%80%A8x"):
        await raw_http(op_stack.port, request_bytes(target, headers=[("User-Agent", "Mozilla ssn=190001010000")]))
    records = [r for r in caplog.records if r.name.startswith(("eid_gateway", "gateway", "aiohttp"))]
    assert any(r.getMessage() == "login_completed" for r in records)
    formatter = JsonFormatter()
    for record in records:
        line = formatter.format(record)
        assert "\n" not in line and "\r" not in line and "\u2028" not in line, line
        json.loads(line)
        blob = line + " " + record.getMessage() + " " + repr(getattr(record, "fields", ""))
        for label, value in secrets.items():
            assert value not in blob, f"{label} appears in log event {record.getMessage()!r}"
    completed = next(r for r in records if r.getMessage() == "login_completed")
    fields = completed.fields  # type: ignore[attr-defined]
    assert fields.get("ssn") in (None, "", SSN[:8] + "****")
