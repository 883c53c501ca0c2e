"""The demo's headless Swedish BankID login, in a real browser.

Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright picks "BankID (Swedish, headless)" on the
gateway's provider choice page and lands on the gateway's own BankID page (gateway/flows/page.py and
gateway/static/headless.js). The development IdP in the same demo process plays the phone: its JSON control
endpoints (/_dev/bankid/...) and its HTML simulator (/bankid-app) scan, identify or decline the order whose
autostart token the page shows. The texts are BankID's recommended user messages (RFA1, RFA3, RFA6, RFA14),
written out here rather than imported, so that a changed wording in the gateway fails a test.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import APIRequestContext, ConsoleMessage, Page, async_playwright, expect
from playwright.async_api import Error as PlaywrightError

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, Demo

pytestmark = pytest.mark.browser

PROVIDER_LINK = "BankID (Swedish, headless)"
#: The demo IdP's test person (gateway/devidp/persons.py).
PERSON = "se-asa"
NAME = "Åsa Öberg"
SSN = "199003152387"
COUNTRY = "SE"
STEP_TIMEOUT_MS = 15_000
#: Scan -> the gateway's next IdP poll (1 s in the demo) -> the page's next status poll (1 s): a few seconds.
POLL_TIMEOUT_MS = 8_000
SCREENSHOT_NAME = "headless-qr-page.png"

#: BankID's recommended user messages (RFA), as the BankID RP guidelines word them.
RFA1_EN = "Start your BankID app."
RFA1_SV = "Starta BankID-appen."
RFA3_SV = "Åtgärden avbruten. Försök igen."
RFA3_EN = "Action cancelled. Please try again."
RFA6_SV = "Åtgärden avbruten."
_SEARCHING_EN = (
    "Searching for BankID, it may take a little while … If a few seconds have passed and still no BankID has "
    "been found, you probably don't have a BankID which can be used for this identification/signing on this "
)
_OTHER_DEVICE_EN = " If you have a BankID on another device you can start the BankID app on that device."
#: RFA14 is the "started" message for a QR code (RFA15 is for autostart on this device); (A) names a computer
#: and its card reader, (B) a phone or tablet. Either fits a QR login; RFA15 would not.
RFA14_EN = {
    "RFA14A": _SEARCHING_EN
    + "computer. If you have a BankID card, please insert it into your card reader."
    + " If you don't have a BankID you can get one from your bank."
    + _OTHER_DEVICE_EN,
    "RFA14B": _SEARCHING_EN + "device. If you don't have a BankID you can get one from your bank." + _OTHER_DEVICE_EN,
}

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
UNIVERSAL_LINK = re.compile(rf"^https://app\.bankid\.com/\?autostarttoken=({_UUID})&redirect=null$")
_QR_LOADED = "() => { const i = document.getElementById('qr'); return !!i && i.complete && i.naturalWidth > 0; }"
#: Installed before any page script: CSP violations are also reported as events, not only on the console.
_CSP_LISTENER = (
    "window.__cspViolations = [];"
    "document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push("
    "e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));"
)


def _normalized(text: str | None) -> str:
    return " ".join((text or "").split())


@dataclass
class Browsing:
    """One browser tab on the demo, what it logged, and an HTTP client for the IdP's control endpoints."""

    page: Page
    demo: Demo
    idp: APIRequestContext
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions

    @property
    def login_url(self) -> str:
        return f"{self.demo.gateway_url}/_auth/headless"

    async def phone(self, action: str, token: str) -> None:
        """Act as the BankID app through the development IdP's JSON control API (bankid_control.py)."""
        body: dict[str, str] = {"autoStartToken": token}
        if action == "identify":
            body["person"] = PERSON
        response = await self.idp.post(f"/_dev/bankid/{action}", data=body)
        assert response.status == 200, f"POST /_dev/bankid/{action}: {response.status} {await response.text()}"

    async def csp_violations(self) -> list[str]:
        return list(await self.page.evaluate("() => window.__cspViolations || []"))


@asynccontextmanager
async def _browsing(demo: Demo, tmp_path: Path, *, locale: str) -> AsyncIterator[Browsing]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        idp = await playwright.request.new_context(base_url=demo.idp_url)
        try:
            context = await browser.new_context(locale=locale)
            context.set_default_timeout(STEP_TIMEOUT_MS)
            await context.add_init_script(_CSP_LISTENER)
            page = await context.new_page()
            browsing = Browsing(page=page, demo=demo, idp=idp)

            def on_console(message: ConsoleMessage) -> None:
                line = f"{message.type}: {message.text} ({message.location.get('url', '')})"
                browsing.console.append(line)
                # Chromium fetches /favicon.ico by itself; without a session the gateway answers 401. That is
                # neither the page's script nor its CSP, so it is not counted as the page's error.
                if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
                    browsing.errors.append(line)

            def on_page_error(error: PlaywrightError) -> None:
                browsing.console.append(f"pageerror: {error}")
                browsing.errors.append(f"pageerror: {error}")

            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            try:
                yield browsing
            except Exception as exc:
                screenshot = tmp_path / "failure.png"
                try:
                    await page.screenshot(path=str(screenshot), full_page=True)
                except Exception as shot_error:  # the page may be gone; keep the original failure
                    screenshot = Path(f"(no screenshot: {shot_error})")
                raise AssertionError(
                    f"{exc}\nat {page.url}\nscreenshot: {screenshot}\n--- browser console ---\n"
                    + "\n".join(browsing.console)
                    + f"\n--- demo log ---\n{demo.log_tail()}"
                ) from exc
        finally:
            await idp.dispose()
            await browser.close()


async def _open_bankid_page(b: Browsing) -> None:
    """From the gateway's front door to its BankID page, as a person would: the provider choice page."""
    await b.page.goto(f"{b.demo.gateway_url}/")
    await b.page.get_by_role("link", name=PROVIDER_LINK).click()
    await expect(b.page).to_have_url(re.compile(rf"^{re.escape(b.login_url)}\?provider=se-bankid&rd="))


async def _qr_and_token(b: Browsing, *, not_token: str | None = None) -> str:
    """Waits for a loaded QR image and the same-device links; returns the autostart token."""
    page = b.page
    open_app = page.locator("a#open-app")
    if not_token is not None:
        await expect(open_app).not_to_have_attribute("href", re.compile(re.escape(not_token)))
    await expect(page.locator("img#qr")).to_be_visible()
    await page.wait_for_function(_QR_LOADED)
    await expect(open_app).to_be_visible()
    await expect(open_app).to_have_attribute("href", UNIVERSAL_LINK)
    href = await open_app.get_attribute("href")
    match = UNIVERSAL_LINK.match(href or "")
    assert match, f"a#open-app href: {href!r}"
    token = match.group(1)
    alt = page.locator("a#open-app-alt")
    await expect(alt).to_be_visible()
    await expect(alt).to_have_attribute("href", f"bankid:///?autostarttoken={token}&redirect=null")
    return token


async def _assert_qr_is_svg(b: Browsing) -> None:
    src = await b.page.locator("img#qr").get_attribute("src")
    assert src and src.startswith("/_auth/headless/qr.svg"), f"img#qr src: {src!r}"
    response = await b.page.request.get(f"{b.demo.gateway_url}{src}")  # with the browser's cookies
    assert response.status == 200, f"GET {src}: {response.status} {await response.text()}"
    assert response.headers.get("content-type", "").startswith("image/svg+xml"), response.headers
    svg = await response.text()
    assert svg.startswith("<svg"), f"GET {src} is not an SVG document: {svg[:80]!r}"
    assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg", svg[:200]


def _artifacts_dir() -> Path:
    directory = Path(os.environ.get("EID_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def _run(demo: Demo, tmp_path: Path, locale: str, scenario: Callable[[Browsing], Awaitable[None]]) -> Browsing:
    async with _browsing(demo, tmp_path, locale=locale) as b:
        await scenario(b)
        assert b.errors == [], "console errors or uncaught exceptions"
        return b


async def test_english_qr_login_as_asa(
    demo: Demo, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    screenshot = _artifacts_dir() / SCREENSHOT_NAME

    async def scenario(b: Browsing) -> None:
        page = b.page
        await _open_bankid_page(b)
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.get_by_role("heading", level=2)).to_have_text("Scan the QR code with the BankID app")
        status = page.get_by_role("status")
        await expect(status).to_have_id("status")
        await expect(status).to_have_attribute("aria-live", "polite")
        await expect(status).to_have_text(RFA1_EN)
        token = await _qr_and_token(b)
        await _assert_qr_is_svg(b)
        await expect(page.get_by_role("link", name="Open BankID on this device")).to_have_id("open-app")
        await expect(page.get_by_role("button", name="Cancel")).to_be_visible()
        await page.screenshot(path=str(screenshot), full_page=True)

        # The phone scans the code: BankID's "started" hint, worded for a QR code (RFA14, not RFA15).
        await b.phone("scan", token)
        await expect(status).to_contain_text("Searching for BankID", timeout=POLL_TIMEOUT_MS)
        shown = _normalized(await status.text_content())
        assert shown in RFA14_EN.values(), f"#status after the scan is not BankID's RFA14 (QR code): {shown!r}"

        # The person identifies: the page goes on to the application, through the gateway, with a session.
        await b.phone("identify", token)
        await expect(page.get_by_test_id("header-x-auth-name")).to_have_text(NAME, timeout=POLL_TIMEOUT_MS)
        assert page.url.startswith(f"{b.demo.gateway_url}/"), f"not served through the gateway: {page.url}"
        await expect(page.get_by_test_id("header-x-auth-ssn")).to_have_text(SSN)
        await expect(page.get_by_test_id("header-x-auth-country")).to_have_text(COUNTRY)
        await expect(page.get_by_test_id("assertion-status")).to_have_text("verified")
        session = await page.request.get(f"{b.demo.gateway_url}/_auth/userinfo")
        assert session.status == 200, f"GET /_auth/userinfo after the login: {session.status}"

    await _run(demo, tmp_path, "en-US", scenario)
    assert screenshot.stat().st_size > 0
    request.node.user_properties.append(("screenshot", str(screenshot)))
    with capsys.disabled():
        print(f"\n[headless login] QR page screenshot: {screenshot}")


async def test_swedish_decline_retry_and_cancel(demo: Demo, tmp_path: Path) -> None:
    async def scenario(b: Browsing) -> None:
        page = b.page
        await _open_bankid_page(b)
        await expect(page.locator("html")).to_have_attribute("lang", "sv")
        await expect(page.get_by_role("heading", level=2)).to_have_text("Skanna QR-koden med BankID-appen")
        await expect(page.locator("#status")).to_have_text(RFA1_SV)
        first = await _qr_and_token(b)
        first_qr = await page.locator("img#qr").get_attribute("src")

        # The person declines in the simulated BankID app (the development IdP's HTML pages, another tab).
        phone = await page.context.new_page()
        await phone.goto(f"{b.demo.idp_url}/bankid-app?autostarttoken={first}")
        await phone.get_by_role("button", name="Cancel", exact=True).click()
        await expect(phone.get_by_role("heading", level=1)).to_have_text("Cancelled")
        await phone.close()

        final = page.locator("#final")
        await expect(final).to_have_text(RFA6_SV, timeout=POLL_TIMEOUT_MS)
        await expect(page.locator("#wait")).to_be_hidden()
        retry = page.get_by_role("button", name="Försök igen")
        await expect(retry).to_be_visible()
        # The message takes the focus (so a screen reader reads it); "Försök igen" is the next Tab stop.
        focused = await page.evaluate("() => document.activeElement && document.activeElement.id")
        if focused != "retry":
            assert focused == "final", f"focus after the decline is on #{focused}, not on the message or the button"
            await page.keyboard.press("Tab")
        await expect(retry).to_be_focused()

        # Trying again starts a new transaction: a new QR code and a new autostart token.
        await retry.click()
        await expect(page.locator("#done")).to_be_hidden()
        second = await _qr_and_token(b, not_token=first)
        assert second != first
        assert await page.locator("img#qr").get_attribute("src") != first_qr
        await expect(page.locator("#status")).to_have_text(RFA1_SV, timeout=POLL_TIMEOUT_MS)
        old = await b.idp.post("/_dev/bankid/scan", data={"autoStartToken": first})
        assert old.status == 400, f"the declined order's token still opens an order: {old.status}"

        # Cancel in the gateway's page: BankID's RFA3, the transaction is gone, nobody is logged in.
        await page.get_by_role("button", name="Avbryt").click()
        await expect(final).to_have_text(RFA3_SV)
        await expect(retry).to_be_visible()
        userinfo = await page.request.get(f"{b.demo.gateway_url}/_auth/userinfo")
        assert userinfo.status == 401, f"GET /_auth/userinfo after decline and cancel: {userinfo.status}"
        status = await page.request.get(f"{b.demo.gateway_url}/_auth/headless/status")
        assert status.status == 404, f"GET /_auth/headless/status after cancel: {status.status}"
        # Should the phone still approve the order the gateway gave up on, that approval logs nobody in.
        await b.idp.post("/_dev/bankid/identify", data={"autoStartToken": second, "person": PERSON})
        status = await page.request.get(f"{b.demo.gateway_url}/_auth/headless/status")
        assert status.status == 404, f"GET /_auth/headless/status after a late approval: {status.status}"
        userinfo = await page.request.get(f"{b.demo.gateway_url}/_auth/userinfo")
        assert userinfo.status == 401, f"GET /_auth/userinfo after approving a cancelled order: {userinfo.status}"

    await _run(demo, tmp_path, "sv-SE", scenario)


def _directives(csp: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for directive in csp.split(";"):
        name, *values = directive.split()
        if name:
            parsed.setdefault(name.lower(), values)
    return parsed


async def _tab_stops(page: Page, presses: int) -> list[str]:
    stops: list[str] = []
    for _ in range(presses):
        await page.keyboard.press("Tab")
        stops.append(await page.evaluate("() => document.activeElement ? document.activeElement.id : ''"))
    return stops


async def test_keyboard_and_csp(demo: Demo, tmp_path: Path) -> None:
    async def scenario(b: Browsing) -> None:
        page = b.page
        response = await page.goto(f"{b.login_url}?provider=se-bankid&rd=%2F")
        assert response is not None and response.status == 200
        csp = await response.header_value("content-security-policy")
        assert csp, f"no Content-Security-Policy on {b.login_url}: {await response.all_headers()}"
        script_src = _directives(csp).get("script-src")
        assert script_src is not None, f"no script-src in the CSP: {csp}"
        assert "'self'" in script_src, f"script-src without 'self': {csp}"
        assert "'unsafe-inline'" not in script_src, f"script-src allows inline script: {csp}"
        assert "'unsafe-eval'" not in script_src, f"script-src allows eval: {csp}"

        await expect(page.locator("#status")).to_have_text(RFA1_EN)
        await _qr_and_token(b)

        # Every control is a Tab stop, in reading order: both app links, then Cancel.
        stops = [stop for stop in await _tab_stops(page, 6) if stop]
        assert stops[:3] == ["open-app", "open-app-alt", "cancel"], f"Tab stops: {stops}"

        # Cancel and "Try again" work from the keyboard alone.
        await page.locator("#cancel").focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("#final")).to_have_text(RFA3_EN)
        stops = [stop for stop in await _tab_stops(page, 3) if stop]
        assert "retry" in stops, f"Tab stops after cancel: {stops}"
        await page.locator("#retry").focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("#wait")).to_be_visible()
        await expect(page.locator("#status")).to_have_text(RFA1_EN)
        await _qr_and_token(b)
        await page.wait_for_timeout(1_500)  # at least one status poll and QR frame more

        assert await b.csp_violations() == [], "CSP violations"
        assert b.errors == [], "console errors or uncaught exceptions on the BankID page"

    await _run(demo, tmp_path, "en-US", scenario)
