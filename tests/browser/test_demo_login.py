"""The demo, in a real browser: `python -m gateway demo`, then log in as a test person and log out.

Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright does what a person trying the
demo does: opens the gateway, picks a person on the development IdP, reads the identity the
protected application received, and logs out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Demo

pytestmark = pytest.mark.browser

#: The demo IdP's test person this test logs in as (gateway/devidp/persons.py).
NAME = "Åsa Öberg"
SSN = "199003152387"
COUNTRY = "SE"
STEP_TIMEOUT_MS = 15_000


async def _log_in_and_out(page: Page, demo: Demo) -> None:
    # Opening the gateway without a session offers the demo's two providers; the redirect one leads to the
    # development IdP's person picker.
    await page.goto(f"{demo.gateway_url}/")
    await page.get_by_role("link", name="Development IdP").click()
    await expect(page).to_have_url(re.compile(f"^{re.escape(demo.idp_url)}/"))
    log_in = page.get_by_role("button", name=f"Log in as {NAME}")
    await expect(page.locator("form").filter(has=log_in)).to_contain_text(SSN)
    await log_in.click()

    # Back through the gateway on the demo application, which shows what it received.
    await expect(page.get_by_test_id("header-x-auth-ssn")).to_have_text(SSN)
    assert page.url.startswith(demo.gateway_url), (
        f"the application page is not served through the gateway: {page.url}"
    )
    await expect(page.get_by_test_id("header-x-auth-name")).to_have_text(NAME)
    await expect(page.get_by_test_id("header-x-auth-country")).to_have_text(COUNTRY)
    await expect(page.get_by_test_id("assertion-status")).to_have_text("verified")

    session = await page.context.request.get(f"{demo.gateway_url}/_auth/userinfo")
    assert session.status == 200, f"GET /_auth/userinfo while logged in: {session.status}"

    # Log out through the page: the browser ends on the gateway's "logged out" page, without a session.
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(f"{demo.gateway_url}/_auth/logged-out")
    await expect(page.get_by_test_id("header-x-auth-ssn")).to_have_count(0)
    after = await page.context.request.get(f"{demo.gateway_url}/_auth/userinfo")
    assert after.status == 401, f"GET /_auth/userinfo after logging out: {after.status}"

    # Opening the application again asks who you are; it shows nobody's identity.
    await page.goto(f"{demo.gateway_url}/")
    await page.get_by_role("link", name="Development IdP").click()
    await expect(page).to_have_url(re.compile(f"^{re.escape(demo.idp_url)}/"))
    await expect(page.get_by_role("button", name=f"Log in as {NAME}")).to_be_visible()
    await expect(page.get_by_test_id("header-x-auth-ssn")).to_have_count(0)


async def test_demo_login_and_logout(demo: Demo, tmp_path: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context()
            context.set_default_timeout(STEP_TIMEOUT_MS)
            page = await context.new_page()
            console: list[str] = []  # CSP violations and script errors explain many failures
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            try:
                await _log_in_and_out(page, demo)
            except Exception as exc:
                screenshot = tmp_path / "failure.png"
                try:
                    await page.screenshot(path=str(screenshot), full_page=True)
                except Exception as shot_error:  # the page may be gone; keep the original failure
                    screenshot = Path(f"(no screenshot: {shot_error})")
                raise AssertionError(
                    f"{exc}\nat {page.url}\nscreenshot: {screenshot}\n--- browser console ---\n"
                    + "\n".join(console)
                    + f"\n--- demo log ---\n{demo.log_tail()}"
                ) from exc
        finally:
            await browser.close()
