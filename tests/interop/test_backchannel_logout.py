"""OpenID Connect Back-Channel Logout 1.0 against a real OP (oidc-provider 9, tests/op/server.js, OP_BACKCHANNEL=1).

The OP's client registered the gateway's ``/_auth/backchannel-logout/op`` as its backchannel_logout_uri with
backchannel_logout_session_required, so its ID tokens carry ``sid`` and its logout tokens ``sid`` and ``sub``.
A person signs in through the gateway, then signs out at the OP itself: the OP POSTs a logout token to the
gateway, which must end that person's gateway session, for every holder of the session cookie, and no other.
Forged and replayed logout tokens must be refused (400) and end nothing.

Every test runs with the cookie session store and with the Redis one (a redis-server of its own).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.interop.op_logout import log_out_at_op
from tests.interop.test_oidc_provider_login import (
    BROWSER_HEADERS,
    PAGE,
    TIMEOUT,
    gateway_config,
    navigate,
    only_form,
    parse_forms,
    requests_for,
    sign_in_at_provider,
    submit,
)
from tests.support.echo import EchoUpstream
from tests.support.gateway import run_gateway

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.interop.conftest import ControlledOpenIDProvider

pytestmark = pytest.mark.interop

CLIENT_ID = "gw-basic"
RESPONSE_MODE = "query"
COOKIE = "gw_session"
HTML = {"Accept": BROWSER_HEADERS["Accept"], "User-Agent": BROWSER_HEADERS["User-Agent"]}
JSON = {"Accept": "application/json"}


@pytest.fixture(params=["cookie", "redis"])
def session_store(request: pytest.FixtureRequest) -> str | None:
    """None: the default cookie store; else the URL of a fresh Redis for ``session.store``."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return None


class Stack:
    def __init__(self, op: ControlledOpenIDProvider, echo: EchoUpstream, gateway_url: str) -> None:
        self.op = op
        self.echo = echo
        self.gateway_url = gateway_url
        self.logout_url = op.backchannel_logout_url

    def browser(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=TIMEOUT)

    async def sign_in(self, browser: aiohttp.ClientSession, login: str) -> None:
        try:
            page = await sign_in_at_provider(
                browser, self.op, self.gateway_url, login=login, response_mode=RESPONSE_MODE
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- OP log ---\n{self.op.log_tail()}") from None
        assert page.url == f"{self.gateway_url}{PAGE}", f"did not land on the protected page: {page.trail}"
        assert page.status == 200, f"GET {page.url}: {page.status} {page.text[:500]}"

    async def sign_in_again(self, browser: aiohttp.ClientSession, login: str) -> None:
        """Sign in through the gateway while the browser still has its OP session (the OP may ask nothing)."""
        page = await navigate(browser, "GET", f"{self.gateway_url}{PAGE}")
        for _ in range(3):
            if page.url == f"{self.gateway_url}{PAGE}":
                break
            forms = parse_forms(page.text) if urlsplit(page.url).netloc == urlsplit(self.op.issuer).netloc else []
            assert forms, f"signing in again stopped at {page.url} ({page.status}): {page.trail}"
            form = only_form(page)
            if form.fields.get("prompt") == "login":
                form.fields.update(login=login, password="any password will do")
            page = await submit(browser, page, form)
        assert page.url == f"{self.gateway_url}{PAGE}", f"did not land on the protected page: {page.trail}"
        assert page.status == 200, f"GET {page.url}: {page.status} {page.text[:500]}"

    def upstream_hits(self) -> int:
        return len(requests_for(self.echo, PAGE))

    async def with_cookie(self, cookie: str, path: str, headers: dict[str, str]) -> tuple[int, str | None]:
        """GET ``path`` carrying only ``cookie`` as the session cookie: (status, Location)."""
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), timeout=TIMEOUT) as http,
            http.get(
                f"{self.gateway_url}{path}", headers={**headers, "Cookie": f"{COOKIE}={cookie}"}, allow_redirects=False
            ) as response,
        ):
            await response.read()
            return response.status, response.headers.get("Location")

    async def assert_session_valid(self, cookie: str, login: str, what: str) -> None:
        before = self.upstream_hits()
        status, _ = await self.with_cookie(cookie, PAGE, JSON)
        assert status == 200, f"{what}: GET {PAGE} with the session cookie: {status}, expected 200"
        assert self.upstream_hits() == before + 1, f"{what}: the upstream was not reached"
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), timeout=TIMEOUT) as http,
            http.get(
                f"{self.gateway_url}/_auth/userinfo", headers={**JSON, "Cookie": f"{COOKIE}={cookie}"}
            ) as response,
        ):
            assert response.status == 200, f"{what}: GET /_auth/userinfo: {response.status}"
            assert (await response.json()).get("sub") == login, f"{what}: the session is not {login}'s"

    async def assert_session_ended(self, cookie: str, what: str) -> None:
        before = self.upstream_hits()
        status, _ = await self.with_cookie(cookie, PAGE, JSON)
        assert status == 401, f"{what}: GET {PAGE} (JSON) with the old session cookie: {status}, expected 401"
        status, location = await self.with_cookie(cookie, PAGE, HTML)
        assert status == 302 and location is not None, (
            f"{what}: GET {PAGE} (HTML) with the old session cookie: {status}, expected a redirect to the login"
        )
        assert urlsplit(location).path == "/_auth/login", f"{what}: redirected to {location}, not to the login"
        status, _ = await self.with_cookie(cookie, "/_auth/userinfo", JSON)
        assert status == 401, f"{what}: GET /_auth/userinfo with the old session cookie: {status}, expected 401"
        assert self.upstream_hits() == before, f"{what}: the upstream was reached with an ended session"

    async def post_logout_token(self, token: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as http,
            http.post(self.logout_url, data={"logout_token": token}) as response,
        ):
            text = await response.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            return response.status, body


def session_cookie(browser: aiohttp.ClientSession) -> str:
    values = [morsel.value for morsel in browser.cookie_jar if morsel.key == COOKIE]
    assert len(values) == 1, f"expected one {COOKIE} cookie in the browser, got {len(values)}"
    return values[0]


def newest_login(counters: dict[str, Any], login: str) -> dict[str, Any]:
    logins = [entry for entry in counters["logins"] if entry["account_id"] == login]
    assert logins, f"the OP recorded no login of {login}: {counters['logins']}"
    entry = logins[-1]
    assert entry["sid"], f"the OP put no sid into {login}'s ID token: {entry}"
    return entry


def assert_refused(status: int, body: Any, what: str) -> None:
    assert status == 400, f"{what}: the gateway answered {status} {body}, expected 400"
    assert isinstance(body, dict) and body.get("error") == "invalid_request", f"{what}: {body}"


@pytest.fixture
async def stack(backchannel_provider: ControlledOpenIDProvider, session_store: str | None) -> AsyncIterator[Stack]:
    op = backchannel_provider
    async with EchoUpstream() as echo:
        config = gateway_config(op, CLIENT_ID, RESPONSE_MODE, echo.url)
        if session_store is not None:
            config["session"]["store"] = session_store
        async with run_gateway(config, environ={"GW_CLIENT_SECRET": op.client_secrets[CLIENT_ID]}) as gw:
            gateway_url = gw.url.rstrip("/")
            assert gateway_url == op.gateway_url, "run_gateway must listen where the OP sends the browser back"
            yield Stack(op, echo, gateway_url)


async def test_logout_at_op_ends_the_gateway_session(stack: Stack) -> None:
    op = stack.op
    async with stack.browser() as alice, stack.browser() as bob:
        await stack.sign_in(alice, "bcl-alice")
        await stack.sign_in(bob, "bcl-bob")
        alice_cookie, bob_cookie = session_cookie(alice), session_cookie(bob)
        counters = await op.counters()
        alice_sid = newest_login(counters, "bcl-alice")["sid"]
        bob_sid = newest_login(counters, "bcl-bob")["sid"]
        assert alice_sid != bob_sid, "two browsers, two OP sessions: their sids must differ"
        await stack.assert_session_valid(alice_cookie, "bcl-alice", "alice's copied cookie before logout")

        # Alice signs out at the OP, on the OP's own site: the OP tells the gateway over the back channel.
        deliveries = len(counters["backchannel"])
        await log_out_at_op(alice, op.issuer)
        sent = (await op.counters())["backchannel"][deliveries:]
        assert len(sent) == 1, f"expected one logout token delivery, the OP made {sent}\n{op.log_tail()}"
        assert sent[0]["account_id"] == "bcl-alice" and sent[0]["sid"] == alice_sid, sent
        assert sent[0]["ok"], f"the gateway refused the OP's logout token: {sent[0]['error']}\n{op.log_tail()}"

        # Whoever holds alice's session cookie is signed out: the copy, and her browser itself.
        await stack.assert_session_ended(alice_cookie, "alice's copied cookie after logout at the OP")
        before = stack.upstream_hits()
        page = await navigate(alice, "GET", f"{stack.gateway_url}{PAGE}", stop_at=op.issuer)
        assert page.trail[0][2] == 302, f"alice's browser after logout at the OP: {page.trail}"
        assert urlsplit(page.trail[1][1]).path == "/_auth/login", page.trail
        assert stack.upstream_hits() == before, "the upstream was reached from alice's browser after logout"

        # Bob's session is another OP session (another sid): it goes on.
        await stack.assert_session_valid(bob_cookie, "bcl-bob", "bob's session after alice's logout")
        page = await navigate(bob, "GET", f"{stack.gateway_url}{PAGE}", stop_at=op.issuer)
        assert page.status == 200 and page.url == f"{stack.gateway_url}{PAGE}", f"bob's browser: {page.trail}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _rs256(header: dict[str, Any], claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def forgeries(genuine: str) -> dict[str, str]:
    """Logout tokens claiming exactly what ``genuine`` claims (fresh jti each), none signed by the OP."""
    header_segment, payload_segment, signature_segment = genuine.split(".")
    header = json.loads(_unb64(header_segment))
    claims = json.loads(_unb64(payload_segment))
    assert header.get("alg") == "RS256" and header.get("kid"), header
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def fresh(suffix: str) -> dict[str, Any]:
        return {**claims, "jti": f"{claims['jti']}-{suffix}"}

    tampered_claims = _b64(json.dumps(fresh("tampered")).encode())
    unsigned = f"{_b64(json.dumps({**header, 'alg': 'none'}).encode())}.{_b64(json.dumps(fresh('none')).encode())}."
    return {
        # Another key, presented under the OP's own kid.
        "another key, the OP's kid": _rs256(header, fresh("kid"), other_key),
        # Another key under a kid the OP never published.
        "another key, unknown kid": _rs256({**header, "kid": "attacker"}, fresh("unknown-kid"), other_key),
        # Unsigned.
        "alg none": unsigned,
        # The OP's signature over other claims.
        "genuine signature, other claims": f"{header_segment}.{tampered_claims}.{signature_segment}",
    }


async def test_forged_logout_tokens_are_refused(stack: Stack) -> None:
    op = stack.op
    login = "bcl-carol"
    async with stack.browser() as carol:
        await stack.sign_in(carol, login)
        cookie = session_cookie(carol)
        sid = newest_login(await op.counters(), login)["sid"]

        # A logout token signed by the OP for carol's OP session, as the OP would send it (not sent).
        minted = await op.logout_token(login, sid)
        assert minted["sid"] == sid, minted
        genuine = minted["logout_token"]

        for what, forged in forgeries(genuine).items():
            status, body = await stack.post_logout_token(forged)
            assert_refused(status, body, f"forged logout token ({what})")
            await stack.assert_session_valid(cookie, login, f"after a forged logout token ({what})")

        # The genuine one, claiming the same, does end carol's session: the forgeries failed on their signature.
        status, body = await stack.post_logout_token(genuine)
        assert status == 200, f"the OP's own logout token: the gateway answered {status} {body}, expected 200"
        await stack.assert_session_ended(cookie, "after the OP's logout token")


async def test_replayed_logout_token_is_refused(stack: Stack) -> None:
    op = stack.op
    async with stack.browser() as dave, stack.browser() as erin:
        await stack.sign_in(dave, "bcl-dave")
        await stack.sign_in(erin, "bcl-erin")
        dave_cookie, erin_cookie = session_cookie(dave), session_cookie(erin)
        genuine = (await op.logout_token("bcl-dave"))["logout_token"]

        status, body = await stack.post_logout_token(genuine)
        assert status == 200, f"the OP's own logout token: the gateway answered {status} {body}, expected 200"
        await stack.assert_session_ended(dave_cookie, "dave after the OP's logout token")
        await stack.assert_session_valid(erin_cookie, "bcl-erin", "erin after dave's logout token")

        # The same token again (same jti): a replay. Refused; nothing more ends.
        status, body = await stack.post_logout_token(genuine)
        assert_refused(status, body, "replayed logout token")
        await stack.assert_session_ended(dave_cookie, "dave after the replay")
        await stack.assert_session_valid(erin_cookie, "bcl-erin", "erin after the replay")


async def test_new_session_after_a_logout_token_is_not_ended_by_it(stack: Stack) -> None:
    """A logout token ends the sessions that exist when it arrives, not later ones with the same sid.

    oidc-provider never reuses a sid once it sent a logout token for it (it ends the OP session, or gives the
    client a new sid), but OPs that use their SSO session id as sid keep it for as long as that session lasts;
    here the test mints the logout token itself and leaves the OP session alive. Frank then signs in again
    silently (the OP still knows her): a gateway that refused every session with that sid for good would send
    her from the login to the OP and back forever. And the old token, replayed, must not end the new session.
    """
    op = stack.op
    login = "bcl-frank"
    async with stack.browser() as frank:
        await stack.sign_in(frank, login)
        cookie = session_cookie(frank)
        sid = newest_login(await op.counters(), login)["sid"]
        genuine = (await op.logout_token(login, sid))["logout_token"]
        status, body = await stack.post_logout_token(genuine)
        assert status == 200, f"the OP's own logout token: the gateway answered {status} {body}, expected 200"
        await stack.assert_session_ended(cookie, "after the OP's logout token")

        # A new login in the same OP session: a new gateway session with the same sid.
        try:
            await stack.sign_in_again(frank, login)
        except AssertionError as exc:
            # A redirect loop's trail is long; its first round shows it.
            raise AssertionError(
                f"signing in again after a logout token (same OP session, same sid) failed: {str(exc)[:1200]}"
            ) from None
        again = session_cookie(frank)
        assert again != cookie, "signing in again must give a new session cookie"
        assert newest_login(await op.counters(), login)["sid"] == sid, "the OP session (and its sid) changed"
        await stack.assert_session_valid(again, login, "the new session")

        status, body = await stack.post_logout_token(genuine)
        assert_refused(status, body, "replayed logout token")
        await stack.assert_session_valid(again, login, "the new session after a replayed logout token")
