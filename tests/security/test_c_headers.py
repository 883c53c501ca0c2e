"""attacks.md C: identity headers cannot be planted, varied, duplicated or split by the client (T09, T10), and
claim values cannot inject headers or slip through in the wrong shape (T12-T14), through fake_op tokens."""

from __future__ import annotations

import unicodedata
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway.assertion import normalize_header_name
from gateway.protocol import jws
from gateway.protocol.claims import decode_header_value
from tests.security.helpers import assert_no_traceback
from tests.support.echo import RecordedRequest
from tests.support.fake_op import (
    DROP,
    SSN,
    OpStack,
    begin_login,
    fetch,
    finish_login,
    jar,
    login,
    running_op_stack,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROTECTED = ("X-Auth-Ssn", "X-Auth-Name", "X-Auth-Country", "X-Auth-Assertion")
PROTECTED_NORMALISED = {normalize_header_name(h) for h in PROTECTED}
SVEN = {"sub": "u-sven", "ssn": "196802020575", "name": "Sven Svensson", "country": "SE"}
ASA_SSN = SSN


def protected_values(seen: RecordedRequest) -> dict[str, list[str]]:
    """Every header the upstream got whose name normalises to a protected one (case, '_' vs '-')."""
    out: dict[str, list[str]] = {}
    for name, value in seen.headers.items():
        key = normalize_header_name(name)
        if key in PROTECTED_NORMALISED:
            out.setdefault(key, []).append(value)
    return out


def assert_gateway_identity(seen: RecordedRequest, *, ssn: str = ASA_SSN) -> None:
    values = protected_values(seen)
    assert values.get("x-auth-ssn") == [ssn], values
    assert values.get("x-auth-country") == ["SE"], values
    assert len(values.get("x-auth-name", [])) == 1, values
    assert len(values.get("x-auth-assertion", [])) == 1, values


def assert_no_identity(seen: RecordedRequest) -> None:
    assert protected_values(seen) == {}, seen.headers


async def _captured_assertion_of_sven(stack: OpStack) -> str:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, stack, **SVEN)).sets("gw_session")
        assert (await fetch(http, "GET", f"{stack.url}/private/echo")).status == 200
    assertion = stack.echo.requests[-1].headers["X-Auth-Assertion"]
    stack.echo.requests.clear()
    return assertion


def spoof_headers(assertion: str) -> dict[str, str]:
    return {"X-Auth-Ssn": SVEN["ssn"], "X-Auth-Name": "Admin", "X-Auth-Country": "NO", "X-Auth-Assertion": assertion}


# (method, path, needs a session, forwarded?, extra headers)
PREFLIGHT = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
ROUTES: list[tuple[str, str, bool, bool, dict[str, str]]] = [
    ("GET", "/public/echo", False, True, {}),
    ("POST", "/public/echo", False, True, {}),
    ("GET", "/healthz", False, True, {}),
    ("GET", "/public/does-not-exist", False, True, {}),
    ("OPTIONS", "/public/echo", False, True, PREFLIGHT),
    ("GET", "/private/echo", True, True, {}),
    ("POST", "/private/echo", True, True, {}),
    ("HEAD", "/private/echo", True, True, {}),
    ("DELETE", "/private/does-not-exist", True, True, {}),
    ("OPTIONS", "/private/echo", True, True, PREFLIGHT),
    ("OPTIONS", "/private/echo", False, False, PREFLIGHT),
    ("GET", "/private/echo", False, False, {}),
    ("GET", "/_auth/healthz", False, False, {}),
    ("GET", "/_auth/nope", False, False, {}),
    ("GET", "/_auth/userinfo", True, False, {}),
]


@pytest.mark.parametrize(("method", "path", "session", "forwarded", "extra"), ROUTES)
async def test_t09_client_identity_headers_never_reach_the_upstream(
    op_stack: OpStack, method: str, path: str, session: bool, forwarded: bool, extra: dict[str, str]
) -> None:
    captured = await _captured_assertion_of_sven(op_stack)
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        if session:
            assert (await login(http, op_stack)).sets("gw_session")  # logged in as Åsa
            op_stack.echo.requests.clear()
        answer = await fetch(http, method, f"{op_stack.url}{path}", headers={**spoof_headers(captured), **extra})
    assert answer.status < 500, answer.body
    assert SVEN["ssn"] not in answer.body and "Admin" not in answer.body
    assert_no_traceback(answer.body)
    if not forwarded:
        assert op_stack.echo.requests == []
        return
    assert len(op_stack.echo.requests) == 1
    seen = op_stack.echo.requests[0]
    if session:
        assert_gateway_identity(seen)
        assert seen.headers["X-Auth-Assertion"] != captured
    else:
        assert_no_identity(seen)


@pytest.mark.parametrize("session", [False, True])
async def test_t09_websocket_upgrade_carries_only_gateway_identity(op_stack: OpStack, session: bool) -> None:
    captured = await _captured_assertion_of_sven(op_stack)
    path = "/private/ws" if session else "/public/ws"
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        if session:
            assert (await login(http, op_stack)).sets("gw_session")
            op_stack.echo.requests.clear()
        async with http.ws_connect(f"{op_stack.url}{path}", headers=spoof_headers(captured)) as ws:
            await ws.send_str("hi")
            reply = await ws.receive(timeout=5)
            assert reply.data == "echo:hi"
    assert len(op_stack.echo.requests) == 1
    seen = op_stack.echo.requests[0]
    assert seen.path == path
    if session:
        assert_gateway_identity(seen)
    else:
        assert_no_identity(seen)


async def test_t09_unauthenticated_websocket_is_refused_before_any_upgrade(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{op_stack.url}/private/ws", headers={"X-Auth-Ssn": SVEN["ssn"]})
    assert refused.value.status in (401, 302)
    assert op_stack.echo.requests == []


# ------------------------------------------------------------------------------------------------ T10

NAME_VARIANTS = [
    lambda n: n.replace("-", "_"),
    str.lower,
    str.upper,
    lambda n: n.replace("-", "_", 1),
    lambda n: n[::-1].replace("-", "_", 1)[::-1],
    lambda n: n.lower().replace("-", "_"),
]


def variant_headers(value: str) -> CIMultiDict[str]:
    """Every protected name in every variant, plus plain duplicates, all carrying ``value``."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name in PROTECTED:
        for make in NAME_VARIANTS:
            headers.add(make(name), value)
        headers.add(name, value)
        headers.add(name, value + "2")
    headers.add("X-Auth-Ssn", "")
    return headers


@pytest.mark.parametrize(("method", "path", "session"), [
    ("GET", "/public/echo", False),
    ("GET", "/private/echo", True),
    ("OPTIONS", "/public/echo", False),
    ("OPTIONS", "/private/echo", True),
    ("POST", "/private/echo", True),
])
async def test_t10_underscore_case_and_duplicate_variants_are_stripped(op_stack: OpStack, method: str, path: str,
                                                                       session: bool) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        if session:
            assert (await login(http, op_stack)).sets("gw_session")
            op_stack.echo.requests.clear()
        answer = await fetch(http, method, f"{op_stack.url}{path}", headers=variant_headers("190001019999"))
    assert answer.status == 200
    seen = op_stack.echo.requests[-1]
    for name, value in seen.headers.items():
        assert "190001019999" not in value, (name, value)
    if session:
        assert_gateway_identity(seen)
    else:
        assert_no_identity(seen)


async def test_t10_connection_header_cannot_remove_gateway_identity(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        op_stack.echo.requests.clear()
        answer = await fetch(http, "GET", f"{op_stack.url}/private/echo",
                             headers={"Connection": "keep-alive, X-Auth-Ssn, X-Auth-Assertion, X-Forwarded-For"})
    assert answer.status == 200
    seen = op_stack.echo.requests[-1]
    assert_gateway_identity(seen)
    assert seen.headers.getall("X-Forwarded-For") == ["127.0.0.1"]


# ------------------------------------------------------------------------------------------------ T12-T14


async def _login_with_claims(stack: OpStack, **claims: Any):
    """Log in with an OP-signed token carrying ``claims``; return (callback outcome, upstream view or None)."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, stack, "/private/echo")
        stack.op.queue_claims(**claims)
        outcome = await finish_login(http, flow)
        seen = None
        if outcome.status == 302 and outcome.sets("gw_session"):
            answer = await fetch(http, "GET", f"{stack.url}/private/echo")
            assert answer.status == 200, answer.body
            seen = stack.echo.requests[-1]
    return outcome, seen


def assert_refused(outcome: Any, *, status: tuple[int, ...] = (401, 403)) -> None:
    assert outcome.status in status, (outcome.status, outcome.body[:300])
    assert not outcome.sets("gw_session")
    assert outcome.location is None
    assert "<html" in outcome.body.lower()
    assert_no_traceback(outcome.body)


INJECTIONS: list[dict[str, Any]] = [
    {"name": "Eve\r\nX-Auth-Ssn: 190001010000"},
    {"name": "Eve\nX-Admin: 1"},
    {"name": "Eve\rX-Admin: 1"},
    {"country": "SE\nX-Admin: 1"},
    {"name": "Eve\u0000Admin"},
    {"name": "Eve\u2028X-Admin: 1"},
    {"name": "Eve\u2029X-Admin: 1"},
    {"name": "Eve\u0085X-Admin: 1"},
    {"name": "Eve\u202eevE"},
    {"sub": "u1\r\nX-Admin: 1"},
    {"name": "Eve\u000bX-Admin: 1"},
    {"name": "Eve\tX-Admin: 1"},
]


@pytest.mark.parametrize("claims", INJECTIONS)
async def test_t12_claim_values_cannot_inject_headers(op_stack: OpStack, claims: dict[str, Any]) -> None:
    outcome, seen = await _login_with_claims(op_stack, **claims)
    if seen is None:
        assert_refused(outcome)
        assert op_stack.echo.requests == []
        return
    # Accepted: then every value is encoded, and nothing extra appears at the upstream.
    assert "X-Admin" not in seen.headers
    values = protected_values(seen)
    assert values["x-auth-ssn"] == [ASA_SSN]
    for name, value in seen.headers.items():
        assert all(" " <= c <= "~" for c in value), (name, value)


NAMES_OK = ["Åsa Öberg", "A\u030asa O\u0308berg", "Zoë 李 😀", "Ærø-Ångström", "O'Brien \"Bob\" 100% \\o/",
            # values that look already encoded must survive the round trip unchanged (no ambiguity)
            "UTF-8''%0D%0AX-Admin: 1", "utf-8''%C3%85", " leading space", "trailing space "]


@pytest.mark.parametrize("name", NAMES_OK)
async def test_t13_unicode_names_are_sent_as_printable_ascii(op_stack: OpStack, name: str) -> None:
    outcome, seen = await _login_with_claims(op_stack, name=name)
    assert outcome.status == 302 and seen is not None, outcome.body[:300]
    header = seen.headers.getall("X-Auth-Name")
    assert len(header) == 1
    assert all(" " <= c <= "~" for c in header[0]), header
    nfc = unicodedata.normalize("NFC", name)
    assert decode_header_value(header[0]) == nfc
    claims = jws.unverified_claims(seen.headers["X-Auth-Assertion"])
    assert claims["name"] == nfc


async def test_t13_nfc_and_nfd_give_the_same_header(op_stack: OpStack) -> None:
    _, nfc = await _login_with_claims(op_stack, name="Åsa Öberg")
    _, nfd = await _login_with_claims(op_stack, name="A\u030asa O\u0308berg")
    assert nfc is not None and nfd is not None
    assert nfc.headers["X-Auth-Name"] == nfd.headers["X-Auth-Name"] == "UTF-8''%C3%85sa%20%C3%96berg"


@pytest.mark.parametrize("name", ["Å" * 10_000, "a" * 5000, "😀" * 300])
async def test_t13_oversized_names_are_refused_not_truncated(op_stack: OpStack, name: str) -> None:
    outcome, seen = await _login_with_claims(op_stack, name=name)
    assert seen is None
    # 403 from the claim cap, or 401 when the token itself is over the 16 KiB token cap (T34).
    assert_refused(outcome)


SHAPES: list[dict[str, Any]] = [
    {"ssn": ["199003152387", "196802020575"]},
    {"ssn": "199003152387,196802020575"},
    {"ssn": 199003152387},
    {"ssn": ""},
    {"ssn": "19900315-2387 "},
    {"ssn": "19900315-2387"},
    {"ssn": " 199003152387"},
    {"ssn": "199003152388"},  # wrong check digit
    {"ssn": "١٩٩٠٠٣١٥٢٣٨٧"},  # Arabic-Indic digits
    {"ssn": True},
    {"name": {"a": 1}},
    {"name": ["Åsa", "Öberg"]},
    {"name": ""},
    {"name": 42},
    {"country": "se"},
    {"country": "SWE"},
    {"country": "SE,NO"},
    {"country": ["SE"]},
    {"country": "NO"},  # a Swedish number under a Norwegian country
    {"sub": ""},
    {"sub": 12345},
]


@pytest.mark.parametrize("claims", SHAPES)
async def test_t14_wrong_claim_shapes_end_in_a_403_page_without_session(op_stack: OpStack,
                                                                        claims: dict[str, Any]) -> None:
    outcome, seen = await _login_with_claims(op_stack, **claims)
    assert seen is None, seen.headers if seen else None
    if "sub" in claims:
        assert_refused(outcome)  # sub is checked with the token (401) or with the claims (403)
    else:
        assert_refused(outcome, status=(403,))
    assert op_stack.echo.requests == []


async def test_t14_absent_country_is_refused_when_required() -> None:
    def require(config: dict[str, Any]) -> None:
        config["providers"][0]["required_claims"] = ["ssn", "name", "country"]

    async with running_op_stack(customize=require) as stack:
        outcome, seen = await _login_with_claims(stack, country=DROP)
        assert seen is None
        assert_refused(outcome, status=(403,))
        outcome, seen = await _login_with_claims(stack, ssn=DROP)
        assert seen is None
        assert_refused(outcome, status=(403,))


async def test_t14_absent_optional_claim_never_becomes_an_empty_or_client_header(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        flow = await begin_login(http, op_stack, "/private/echo")
        op_stack.op.queue_claims(country=DROP)
        outcome = await finish_login(http, flow)
        if outcome.status != 302:
            assert_refused(outcome)
            return
        await fetch(http, "GET", f"{op_stack.url}/private/echo", headers={"X-Auth-Country": "NO"})
    seen = op_stack.echo.requests[-1]
    assert "X-Auth-Country" not in seen.headers
    assert protected_values(seen).get("x-auth-ssn") == [ASA_SSN]
