"""attacks.md F: OIDC code-flow handling through fake_op (T22-T25, T27, T28): forced logout and login-state
bounds, state binding, PKCE and code injection, issuer mix-up, reflected IdP errors, and the ID-token claim
matrix. Every refusal must be an error page, no session cookie and nothing forwarded."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from yarl import URL

from tests.security.helpers import assert_no_traceback
from tests.support.fake_op import (
    DROP,
    Flow,
    OpStack,
    Outcome,
    begin_login,
    callback_with,
    fetch,
    finish_login,
    jar,
    login,
    running_op_stack,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


def assert_login_refused(outcome: Outcome, stack: OpStack, *, status: tuple[int, ...] = (400, 401, 403)) -> None:
    assert outcome.status in status, (outcome.status, outcome.body[:200])
    assert not outcome.sets("gw_session")
    assert outcome.location is None
    assert "<html" in outcome.body.lower()
    assert_no_traceback(outcome.body)
    assert stack.echo.requests == []


async def session_works(http: aiohttp.ClientSession, stack: OpStack) -> bool:
    answer = await fetch(http, "GET", f"{stack.url}/private/x", headers={"Accept": "application/json"})
    return answer.status == 200


def login_cookie(http: aiohttp.ClientSession) -> str:
    return {c.key: c.value for c in http.cookie_jar}["gw_session_login"]


# ------------------------------------------------------------------------------------------------ T22


async def test_t22_get_logout_only_shows_a_confirmation(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        page = await fetch(http, "GET", f"{op_stack.url}/_auth/logout", headers={"Accept": "text/html"})
        assert page.status == 200
        assert "gw_session" not in page.set_cookies
        assert 'method="post"' in page.body
        assert await session_works(http, op_stack)


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://127.0.0.1"},
    # Sec-Fetch-Site decides when present: a null origin from another site, or a sibling host, stays refused,
    # and an Origin naming another site is refused whatever Sec-Fetch-Site says.
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "null", "Sec-Fetch-Site": "same-site"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "none"},
])
async def test_t22_cross_site_logout_post_is_refused(op_stack: OpStack, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        refused = await fetch(http, "POST", f"{op_stack.url}/_auth/logout", headers={"Accept": "text/html", **headers})
        assert refused.status == 403
        assert "gw_session" not in refused.set_cookies
        assert await session_works(http, op_stack)


@pytest.mark.parametrize("sent", [
    "public origin, same-origin",
    "null origin, same-origin",  # what Chromium sends from a no-referrer page (issue 15, defect 1)
    "no origin, same-origin",
    "public origin, no Sec-Fetch-Site",
])
async def test_t22_same_origin_logout_post_works(op_stack: OpStack, sent: str) -> None:
    origin, site = sent.split(", ")
    headers = {"Origin": op_stack.config["public_url"]} if origin == "public origin" else {}
    if origin == "null origin":
        headers["Origin"] = "null"
    if site == "same-origin":
        headers["Sec-Fetch-Site"] = "same-origin"
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        done = await fetch(http, "POST", f"{op_stack.url}/_auth/logout", headers=headers)
        assert done.status == 303
        assert done.clears("gw_session")
        assert not await session_works(http, op_stack)


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Accept": "text/html", "Origin": "https://evil.example"},  # a browser without Sec-Fetch-* headers
])
async def test_t22_refused_browser_form_post_gets_a_page_with_a_way_forward(
    op_stack: OpStack, headers: dict[str, str]
) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        refused = await fetch(http, "POST", f"{op_stack.url}/_auth/logout", data={"x": "1"}, headers=headers)
        assert refused.status == 403
        assert refused.headers["Content-Type"].startswith("text/html")
        assert 'href="/_auth/logout"' in refused.body  # back to the confirm page, to log out from there
        assert "cross_site_request" in refused.body
        assert await session_works(http, op_stack)


async def test_t22_refused_fetch_post_gets_json(op_stack: OpStack) -> None:
    """A script's POST (mode cors) is an API call: JSON, not a page."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        refused = await fetch(http, "POST", f"{op_stack.url}/_auth/logout", headers={
            "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "cross-site", "Accept": "text/html"})
        assert refused.status == 403
        assert refused.headers["Content-Type"].startswith("application/json")


async def test_t22_logout_confirm_page_sends_its_origin_with_the_post(op_stack: OpStack) -> None:
    """The confirm page's Referrer-Policy lets browsers send Origin on its own form (no-referrer makes it null)."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        page = await fetch(http, "GET", f"{op_stack.url}/_auth/logout", headers={"Accept": "text/html"})
        assert page.headers["Referrer-Policy"] == "same-origin"
        assert 'action="/_auth/logout?everywhere=1"' in page.body
        # The post redirects to the OP's end-session endpoint; CSP form-action covers redirects, so that
        # origin (and only it) is allowed besides 'self'.
        directives = dict(d.strip().split(" ", 1) for d in page.headers["Content-Security-Policy"].split(";"))
        assert directives["form-action"] == f"'self' {op_stack.op.url}"


async def test_t22_repeated_login_starts_keep_bounded_state(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flows = [await begin_login(http, op_stack) for _ in range(40)]
        cookie = login_cookie(http)
        assert len(cookie) < 4000
        oldest = await finish_login(http, flows[0])
        assert_login_refused(oldest, op_stack, status=(400,))
        newest = await finish_login(http, flows[-1])
    assert newest.status == 302 and newest.sets("gw_session")


# ------------------------------------------------------------------------------------------------ T23


@pytest.mark.parametrize("params", [
    {"state": ""},
    {"state": None},
    {"state": "wrong"},
    {"state": "A" * 43},
    {"state": "x" * 5000},
    {"state": "%00"},
])
async def test_t23_bad_state_is_refused_before_the_token_exchange(op_stack: OpStack,
                                                                  params: dict[str, str | None]) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        outcome = await fetch(http, "GET", callback_with(flow, **params), headers={"Accept": "text/html"})
    assert_login_refused(outcome, op_stack, status=(400,))
    assert op_stack.op.token_requests == []


async def test_t23_repeated_state_parameter_is_refused(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        outcome = await fetch(http, "GET", flow.callback_url + f"&state={flow.state}", headers={"Accept": "text/html"})
    assert_login_refused(outcome, op_stack, status=(400,))
    assert op_stack.op.token_requests == []


@pytest.mark.parametrize("extra", ["&code=other", "&iss=x", "&error=access_denied"])
async def test_t23_repeated_callback_parameters_are_refused(op_stack: OpStack, extra: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        outcome = await fetch(http, "GET", flow.callback_url + extra, headers={"Accept": "text/html"})
    assert_login_refused(outcome, op_stack, status=(400, 401))
    assert op_stack.op.token_requests == []


async def test_t23_valid_state_without_the_login_cookie_is_refused(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
    async with aiohttp.ClientSession(cookie_jar=jar()) as other:
        outcome = await finish_login(other, flow)
    assert_login_refused(outcome, op_stack, status=(400,))
    assert op_stack.op.token_requests == []


async def test_t23_login_cookie_of_browser_a_with_state_of_browser_b_is_refused(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as a, aiohttp.ClientSession(cookie_jar=jar()) as b:
        await begin_login(a, op_stack)
        flow_b = await begin_login(b, op_stack)
        outcome = await finish_login(a, flow_b)
    assert_login_refused(outcome, op_stack, status=(400,))
    assert op_stack.op.token_requests == []


async def test_t23_successful_code_and_state_cannot_be_replayed(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        saved_cookie = login_cookie(http)
        first = await finish_login(http, flow)
        assert first.status == 302 and first.sets("gw_session")
        exchanges = len(op_stack.op.token_requests)
    async with aiohttp.ClientSession(cookie_jar=jar()) as replay:
        again = await finish_login(replay, flow)  # no login cookie
        assert_login_refused(again, op_stack, status=(400,))
        replay.cookie_jar.update_cookies({"gw_session_login": saved_cookie}, URL(op_stack.url))
        again = await finish_login(replay, flow)  # with the login cookie as it was before the first callback
        assert_login_refused(again, op_stack, status=(400,))
    assert len(op_stack.op.token_requests) == exchanges


async def test_t23_state_is_spent_even_when_the_login_failed(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        saved_cookie = login_cookie(http)
        op_stack.op.queue_claims(aud="other")
        failed = await finish_login(http, flow)
        assert_login_refused(failed, op_stack, status=(401,))
        exchanges = len(op_stack.op.token_requests)
        http.cookie_jar.update_cookies({"gw_session_login": saved_cookie}, URL(op_stack.url))
        again = await finish_login(http, flow)  # a good token would be served now
    assert_login_refused(again, op_stack, status=(400,))
    assert len(op_stack.op.token_requests) == exchanges


# ------------------------------------------------------------------------------------------------ T24


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def test_t24_every_authorization_request_uses_s256_pkce(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
    params = op_stack.op.authorizations[-1].params
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["response_type"] == "code" and params["nonce"] and params["state"]
    assert params["nonce"] != params["state"]
    form = op_stack.op.token_requests[-1].form
    assert _s256(form["code_verifier"]) == params["code_challenge"]
    assert form["redirect_uri"] == op_stack.callback_url


async def test_t24_pkce_is_not_downgraded_when_discovery_offers_plain() -> None:
    async with running_op_stack(discovery_overrides={"code_challenge_methods_supported": ["plain"]}) as stack, \
            aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, stack)
    assert flow.authorization.params["code_challenge_method"] == "S256"


async def test_t24_injected_code_from_another_flow_creates_no_session(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as attacker, aiohttp.ClientSession(cookie_jar=jar()) as victim:
        attacker_flow = await begin_login(attacker, op_stack)
        victim_flow = await begin_login(victim, op_stack)
        # The OP answers the attacker's code with the attacker's flow (its nonce), as a real OP would.
        injected = callback_with(victim_flow, code=attacker_flow.authorization.code)
        outcome = await finish_login(victim, victim_flow, callback_url=injected)
    assert_login_refused(outcome, op_stack, status=(401,))
    form = op_stack.op.token_requests[-1].form
    # The verifier sent is the victim's, so an OP enforcing PKCE refuses the attacker's code too.
    assert _s256(form["code_verifier"]) == victim_flow.authorization.params["code_challenge"]
    assert _s256(form["code_verifier"]) != attacker_flow.authorization.params["code_challenge"]


# ------------------------------------------------------------------------------------------------ T25


@pytest.mark.parametrize("iss", ["https://evil-idp.test", "{issuer}/", "{issuer}.evil", "{issuer_https}", "",
                                 "{issuer_upper}"])
async def test_t25_callback_iss_must_match_even_when_not_advertised(op_stack: OpStack, iss: str) -> None:
    issuer = op_stack.op.issuer
    value = iss.format(issuer=issuer, issuer_https=issuer.replace("http:", "https:"), issuer_upper=issuer.upper())
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        outcome = await fetch(http, "GET", callback_with(flow, iss=value), headers={"Accept": "text/html"})
    assert_login_refused(outcome, op_stack, status=(400,))
    assert op_stack.op.token_requests == []


@pytest.mark.parametrize(("sent", "ok"), [(None, False), ("https://evil-idp.test", False), ("{issuer}", True)])
async def test_t25_rfc9207_iss_is_required_when_advertised(sent: str | None, ok: bool) -> None:
    async with running_op_stack(iss_parameter_supported=True) as stack, \
            aiohttp.ClientSession(cookie_jar=jar()) as http:
        stack.op.authorization_iss = sent.format(issuer=stack.op.issuer) if sent else None
        flow = await begin_login(http, stack)
        outcome = await finish_login(http, flow)
        if ok:
            assert outcome.status == 302 and outcome.sets("gw_session")
        else:
            assert_login_refused(outcome, stack, status=(400,))
            assert stack.op.token_requests == []


@pytest.mark.parametrize("iss", ["{issuer}.evil", "{issuer_short}", "{issuer}/", "{issuer_https}",
                                 "{issuer_upper}", "{issuer} ", " {issuer}", "https://idp.test", DROP, ["{issuer}"]])
async def test_t25_id_token_iss_must_match_exactly(op_stack: OpStack, iss: Any) -> None:
    issuer = op_stack.op.issuer
    fields = {"issuer": issuer, "issuer_short": issuer[:-1], "issuer_https": issuer.replace("http:", "https:"),
              "issuer_upper": issuer.upper()}
    value = [v.format(**fields) for v in iss] if isinstance(iss, list) else (
        iss.format(**fields) if isinstance(iss, str) else iss)
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        op_stack.op.queue_claims(iss=value)
        outcome = await finish_login(http, flow)
    assert_login_refused(outcome, op_stack, status=(401,))


async def test_t25_state_of_one_provider_is_refused_at_another_providers_callback() -> None:
    def two_providers(config: dict[str, Any]) -> None:
        other = dict(config["providers"][0], name="other")
        config["providers"].append(other)

    async with running_op_stack(customize=two_providers) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, stack, query="provider=dev&rd=/private/x")
        assert "/_auth/callback/dev?" in flow.callback_url
        mixed = flow.callback_url.replace("/_auth/callback/dev?", "/_auth/callback/other?")
        outcome = await finish_login(http, flow, callback_url=mixed)
        assert_login_refused(outcome, stack, status=(400,))
        assert stack.op.token_requests == []


# ------------------------------------------------------------------------------------------------ T27


@pytest.mark.parametrize("error", ["access_denied", "<script>alert(1)</script>", "server_error"])
async def test_t27_idp_error_parameters_are_not_reflected(op_stack: OpStack, error: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        url = callback_with(flow, code=None, error=error,
                            error_description="<script>alert(1)</script><a href=//evil.example>x</a>",
                            error_uri="https://evil.example/help")
        outcome = await fetch(http, "GET", url, headers={"Accept": "text/html"})
    assert_login_refused(outcome, op_stack, status=(400, 401))
    assert "<script" not in outcome.body and "evil.example" not in outcome.body
    assert op_stack.op.token_requests == []


async def test_t27_error_with_a_bad_state_is_just_a_state_error(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        url = callback_with(flow, code=None, state="nope", error="access_denied",
                            error_description="<script>alert(1)</script>")
        outcome = await fetch(http, "GET", url, headers={"Accept": "text/html"})
    assert_login_refused(outcome, op_stack, status=(400,))
    assert "<script" not in outcome.body


# ------------------------------------------------------------------------------------------------ T28

NOW = int(time.time())


@dataclass(frozen=True)
class FromNow:
    """A time claim relative to the moment the token is signed (not to import time: the suite runs long)."""

    seconds: int


CLAIM_MATRIX: list[tuple[str, dict[str, Any]]] = [
    ("aud other", {"aud": "other"}),
    ("aud list without us", {"aud": ["other", "third"]}),
    ("aud list without azp", {"aud": ["gw-test", "other"]}),
    ("aud empty list", {"aud": []}),
    ("aud int", {"aud": 1}),
    ("aud missing", {"aud": DROP}),
    ("aud case", {"aud": "GW-TEST"}),
    ("azp other", {"azp": "other"}),
    ("azp other with list", {"aud": ["gw-test", "other"], "azp": "other"}),
    ("exp past", {"exp": FromNow(-120)}),
    ("exp just past skew", {"exp": FromNow(-61)}),
    ("iat future", {"iat": FromNow(3600)}),
    ("iat beyond skew", {"iat": FromNow(120)}),
    ("nbf future", {"nbf": FromNow(3600)}),
    ("nbf beyond skew", {"nbf": FromNow(120)}),
    ("exp missing", {"exp": DROP}),
    ("iat missing", {"iat": DROP}),
    ("sub missing", {"sub": DROP}),
    ("sub empty", {"sub": ""}),
    ("sub not a string", {"sub": 1}),
    ("nonce missing", {"nonce": DROP}),
    ("nonce wrong", {"nonce": "wrong"}),
    ("nonce empty", {"nonce": ""}),
    ("nonce list", {"nonce": ["{nonce}"]}),
    ("exp string", {"exp": "9999999999"}),
    ("iat string", {"iat": str(NOW)}),
    ("nbf string", {"nbf": str(NOW)}),
    ("exp bool", {"exp": True}),
    ("exp null", {"exp": None}),
    ("exp NaN", {"exp": float("nan")}),
    ("exp Infinity", {"exp": float("inf")}),
    ("iat NaN", {"iat": float("nan")}),
    ("nbf NaN", {"nbf": float("nan")}),
]


@pytest.mark.parametrize(("case", "overrides"), CLAIM_MATRIX, ids=[c for c, _ in CLAIM_MATRIX])
async def test_t28_id_token_claim_matrix(op_stack: OpStack, caplog: pytest.LogCaptureFixture, case: str,
                                         overrides: dict[str, Any]) -> None:
    caplog.set_level(logging.DEBUG, logger="eid_gateway")
    tokens: list[str] = []

    def reply(request: Any) -> str:
        now = int(time.time())
        resolved = {k: now + v.seconds if isinstance(v, FromNow) else v for k, v in overrides.items()}
        claims = op_stack.op.claims(request.nonce, **resolved)
        if claims.get("nonce") == ["{nonce}"]:
            claims["nonce"] = [request.nonce]
        token = op_stack.op.sign(claims)
        tokens.append(token)
        return token

    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        op_stack.op.queue(reply)
        outcome = await finish_login(http, flow)
        assert_login_refused(outcome, op_stack, status=(401, 403))
        assert not await session_works(http, op_stack)
    assert tokens, "the token endpoint was not called"
    text = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "login_failed" in text
    assert tokens[0] not in text and tokens[0].split(".")[2] not in text
    assert flow.authorization.code not in text


async def test_t28_positive_control_list_audience_with_azp(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        op_stack.op.queue_claims(aud=["gw-test", "other"], azp="gw-test")
        outcome = await finish_login(http, flow)
    assert outcome.status == 302 and outcome.sets("gw_session")


async def test_t28_nonce_and_token_of_an_earlier_login_cannot_be_reused(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        first: Flow = await begin_login(http, op_stack)
        token = op_stack.op.valid_token(first.nonce)
        op_stack.op.queue(token)
        assert (await finish_login(http, first)).sets("gw_session")
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        second = await begin_login(http, op_stack)
        op_stack.op.queue_claims(nonce=first.nonce)
        assert_login_refused(await finish_login(http, second), op_stack, status=(401,))
        third = await begin_login(http, op_stack)
        op_stack.op.queue(token)  # the very same id_token again
        assert_login_refused(await finish_login(http, third), op_stack, status=(401,))


@pytest.mark.parametrize("reply", [
    (400, {"error": "invalid_grant"}),
    (401, {"error": "invalid_client"}),
    (200, {"access_token": "x", "token_type": "Bearer"}),
    (200, {"id_token": ""}),
    (200, {"id_token": 123}),
    (200, {"id_token": "a.b.c", "token_type": "mac"}),
    (200, "not json"),
    (200, ["a list"]),
    (500, {"error": "server_error"}),
    (302, ""),
])
async def test_t28_broken_token_responses_fail_closed(op_stack: OpStack, reply: tuple[int, Any]) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack)
        op_stack.op.queue_error(*reply)
        outcome = await finish_login(http, flow)
    assert_login_refused(outcome, op_stack, status=(400, 401, 403, 502, 503))


async def test_t25_t28_authorize_request_parameters_are_bound(op_stack: OpStack) -> None:
    """The authorize request names our client and exact callback (no client-supplied extras)."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack, query="rd=/x&redirect_uri=https://evil.example/cb&client_id=evil"
                                                    "&scope=openid%20admin&response_type=token&prompt=none")
    start = urlsplit(flow.start.location or "")
    query = parse_qs(start.query)
    assert query["redirect_uri"] == [op_stack.callback_url]
    assert query["client_id"] == ["gw-test"]
    assert query["response_type"] == ["code"]
    assert query["scope"] == ["openid"]
    assert "prompt" not in query


# ------------------------------------------------------------------------------------------------ acr


@pytest.mark.parametrize(("returned", "logged_in"), [
    ("urn:bankid:bid;LOA=4", True),   # what BankID Norway answers for acr_values=urn:bankid:bid
    ("urn:bankid:bid", True),
    ("urn:bankid:bis;LOA=3", False),  # a weaker method than the one asked for
    ("urn:bankid:bidx;LOA=4", False),
])
async def test_t28_acr_with_parameters_matches_the_requested_value(returned: str, logged_in: bool) -> None:
    def customize(config: dict[str, Any]) -> None:
        config["providers"][0].update(acr_values=["urn:bankid:bid"], require_acr=True)

    async with running_op_stack(customize=customize) as stack, aiohttp.ClientSession(cookie_jar=jar()) as http:
        done = await login(http, stack, acr=returned)
        assert done.sets("gw_session") is logged_in, (done.status, done.body[:300])
        if not logged_in:
            assert done.status in (400, 401, 403)
            assert await session_works(http, stack) is False
