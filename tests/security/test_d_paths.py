"""attacks.md D: the public-route decision and the forwarded request use one normalised path (T15), query,
fragment and matrix parts never take part in it (T17), and methods get no shortcut (T18). Raw sockets,
because aiohttp and curl normalise request targets (public_paths are ["/healthz", "/public/"])."""

from __future__ import annotations

import aiohttp
import pytest

from tests.security.helpers import assert_no_traceback, raw_http, request_bytes
from tests.support.fake_op import OpStack, fetch, jar, login

pytestmark = pytest.mark.asyncio(loop_scope="module")

T15_PROTECTED = [
    "/public/../private/x",
    "/public/%2e%2e/private/x",
    "/public/%2E%2E%2Fprivate/x",
    "/public/..%2fprivate/x",
    "/public/.%2e/private/x",
    "/public/%252e%252e/private/x",
    "/public/..\\private\\x",
    "/public/..%5cprivate/x",
    "/public;/../private/x",
    "/public/%00/../private/x",
    "/PUBLIC/../private/x",
    # more of the same families
    "/public/./../private/x",
    "/public//../private/x",
    "/public/x/../../private/x",
    "/public/%2e%2e%2f%2e%2e%2fprivate/x",
    "/public/%c0%ae%c0%ae/private/x",
    "/public/%e0%80%ae%e0%80%ae/private/x",
    "/public/%ef%bc%8e%ef%bc%8e/private/x",
    "/public/..;/private/x",
    "/public/%2e%2e;/private/x",
    "/public/..%00/private/x",
    "/public/..%0d/private/x",
    "/public/%u002e%u002e/private/x",
    "/public/..%252f/private/x",
    "/Public/x",
    "/public",
    "/publicx/../private/x",
    "/healthz/../private/x",
    "/healthz/x",
    "/healthz%2f../private/x",
    "/./public/../private/x",
    "/public/..",
    "/public/%2e%2e",
    "//public/../private/x",
    "/public/\t/../private/x",
]

T17_PROTECTED = [
    "/private/x?next=/public/",
    "/private/x?/public/",
    "/private/x%23/public/",
    "/private/x#/public/",
    "/private/x;/public/",
    "/private/x%3b/public/",
    "/private/x%3f/public/",
    "/private/x?%2F..%2Fpublic%2F",
    "/private/public/",
    "/x/public/",
    "http://127.0.0.1/public/../private/x",
    "http://evil.example/public/x/../../private/x",
    "*",
]


async def _send(stack: OpStack, target: str, *, method: str = "GET",
                headers: list[tuple[str, str]] | None = None) -> int | None:
    raw = await raw_http(stack.port, request_bytes(target, method=method, headers=headers))
    assert_no_traceback(raw.text)
    return raw.status


@pytest.mark.parametrize("target", T15_PROTECTED + T17_PROTECTED)
async def test_t15_t17_protected_targets_are_never_forwarded(op_stack: OpStack, target: str) -> None:
    status = await _send(op_stack, target)
    assert status in (302, 400, 401, 404), status
    assert op_stack.echo.requests == [], [(r.method, r.path) for r in op_stack.echo.requests]


@pytest.mark.parametrize("target", T15_PROTECTED + T17_PROTECTED)
async def test_t15_t17_api_clients_get_401_or_400(op_stack: OpStack, target: str) -> None:
    raw = await raw_http(op_stack.port, request_bytes(target, accept="application/json"))
    assert raw.status in (400, 401, 404), raw.status
    assert op_stack.echo.requests == []


@pytest.mark.parametrize(("target", "forwarded_path"), [
    ("/private/../public/x", "/public/x"),
    ("/public/./x", "/public/x"),
    ("/public//x", "/public/x"),
    ("/public/a/../x", "/public/x"),
    ("/public/%78", "/public/x"),
    ("/public/%2e/x", "/public/x"),
    ("/x/../public/x", "/public/x"),
])
async def test_t15_public_targets_are_forwarded_on_the_normalised_path(op_stack: OpStack, target: str,
                                                                      forwarded_path: str) -> None:
    status = await _send(op_stack, target)
    assert status == 200
    assert [r.path for r in op_stack.echo.requests] == [forwarded_path]


async def test_t15_the_forwarded_path_is_the_one_that_was_authorised(op_stack: OpStack) -> None:
    """With a session, whatever the upstream gets is the normalised path; it never gets a second decode."""
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        cookie = {c.key: c.value for c in http.cookie_jar}["gw_session"]
    op_stack.echo.requests.clear()
    for target, expected in [("/public/../private/x", "/private/x"), ("/private/a%20b", "/private/a b"),
                             ("/private/%25", None), ("/private/caf%C3%A9", "/private/café")]:
        raw = await raw_http(op_stack.port, request_bytes(target, headers=[("Cookie", f"gw_session={cookie}")]))
        if expected is None:
            assert raw.status == 400
            continue
        assert raw.status == 200, raw.text
        assert op_stack.echo.requests[-1].path == expected


# ------------------------------------------------------------------------------------------------ T18


@pytest.mark.parametrize(("method", "headers"), [
    ("OPTIONS", [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "GET"), ("X-Auth-Ssn", "1")]),
    ("HEAD", []),
    ("GET", [("X-HTTP-Method-Override", "OPTIONS")]),
    ("POST", [("X-HTTP-Method-Override", "DELETE"), ("Content-Length", "0")]),
    ("POST", [("X-HTTP-Method", "OPTIONS"), ("X-Method-Override", "HEAD"), ("Content-Length", "0")]),
    ("PUT", [("Content-Length", "0")]),
    ("DELETE", []),
    ("PATCH", [("Content-Length", "0")]),
    ("TRACE", []),
    ("CONNECT", []),
    ("PROPFIND", []),
    ("FOO", []),
    ("get", []),
])
async def test_t18_no_method_skips_authentication(op_stack: OpStack, method: str,
                                                  headers: list[tuple[str, str]]) -> None:
    target = "127.0.0.1:80" if method == "CONNECT" else "/private/x"
    raw = await raw_http(op_stack.port, request_bytes(target, method=method, headers=headers))
    # CONNECT's authority-form target is no path at all: the router's 404 is fine, it forwards nothing.
    assert raw.status in ((302, 400, 401, 405, 404) if method == "CONNECT" else (302, 400, 401, 405)), raw.text[:300]
    if method == "HEAD":
        assert raw.status in (302, 401)
    assert_no_traceback(raw.text)
    assert op_stack.echo.requests == []


async def test_t18_method_override_headers_are_not_passed_on(op_stack: OpStack) -> None:
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert (await login(http, op_stack)).sets("gw_session")
        answer = await fetch(http, "POST", f"{op_stack.url}/private/x",
                             headers={"X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "DELETE",
                                      "X-Method-Override": "DELETE"})
    assert answer.status == 200
    seen = op_stack.echo.requests[-1]
    assert seen.method == "POST"
    for name in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"):
        assert name not in seen.headers


@pytest.mark.parametrize("target", ["/%0a/x", "/private/%0d%0aX-Auth-Ssn:%201", "/%0b", "/a%0Ab"])
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
async def test_an_encoded_line_break_in_the_path_gets_the_gateways_400(op_stack: OpStack, target: str,
                                                                       accept: str) -> None:
    """Was the router's bare ``404: Not Found`` text: its catch-all pattern did not match a decoded line break."""
    raw = await raw_http(op_stack.port, request_bytes(target, accept=accept))
    assert raw.status == 400, raw.text[:300]
    assert (raw.header("Content-Type") or "").startswith("application/json" if accept != "text/html" else "text/html")
    assert_no_traceback(raw.text)
    assert op_stack.echo.requests == []
