"""The gateway's own forms, clicked in a real browser (issue 15, defect 1).

Each form the gateway serves must work when a person submits it from that page: Chromium decides what Origin
and Sec-Fetch-Site it sends from the page's Referrer-Policy and the initiator, which no HTTP-level test can
stand in for. And the same post from another site's page must stay refused, with a page to go on from.
The headless page's cancel button is clicked in test_headless_login.py (test_swedish_decline_retry_and_cancel).
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Demo

pytestmark = pytest.mark.browser

NAME = "Åsa Öberg"
SSN = "199003152387"
STEP_TIMEOUT_MS = 15_000


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def logged_in(browser: Browser, demo: Demo) -> tuple[BrowserContext, Page]:
    """A fresh browser profile, logged in through the chooser link and the development IdP."""
    context = await browser.new_context()
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(f"{demo.gateway_url}/")
    await page.get_by_role("link", name="Development IdP").click()
    await expect(page).to_have_url(re.compile(f"^{re.escape(demo.idp_url)}/"))
    await page.get_by_role("button", name=f"Log in as {NAME}").click()
    await expect(page.get_by_test_id("header-x-auth-ssn")).to_have_text(SSN)
    assert await userinfo_status(context, demo) == 200
    return context, page


async def userinfo_status(context: BrowserContext, demo: Demo) -> int:
    return (await context.request.get(f"{demo.gateway_url}/_auth/userinfo")).status


async def test_logout_confirm_page_logs_out(demo: Demo) -> None:
    async with chromium() as browser:
        context, page = await logged_in(browser, demo)
        await page.goto(f"{demo.gateway_url}/_auth/logout")
        await page.get_by_role("button", name="Log out", exact=True).click()
        await expect(page).to_have_url(f"{demo.gateway_url}/_auth/logged-out")
        assert await userinfo_status(context, demo) == 401, "still logged in after the confirm page's Log out"


async def test_logout_on_all_devices_ends_the_other_browsers_session(demo: Demo) -> None:
    async with chromium() as browser:
        here, page = await logged_in(browser, demo)
        elsewhere, _ = await logged_in(browser, demo)
        await page.goto(f"{demo.gateway_url}/_auth/logout")
        await page.get_by_role("button", name="Log out on all devices").click()
        await expect(page).to_have_url(f"{demo.gateway_url}/_auth/logged-out")
        assert await userinfo_status(here, demo) == 401
        assert await userinfo_status(elsewhere, demo) == 401, "the other browser's session survived"


class _AttackerPage(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (
            f'<!doctype html><form method="post" action="{self.target}">'
            '<button type="submit">Win a prize</button></form>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def attacker_site(demo: Demo) -> Iterator[str]:
    """Another site (localhost, where the gateway is 127.0.0.1) whose page posts to the gateway's logout."""
    handler = type("Handler", (_AttackerPage,), {"target": f"{demo.gateway_url}/_auth/logout"})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_cross_site_logout_form_is_refused_with_a_page_to_go_on_from(demo: Demo, attacker_site: str) -> None:
    async with chromium() as browser:
        context, page = await logged_in(browser, demo)
        await page.goto(attacker_site)
        async with page.expect_response(f"{demo.gateway_url}/_auth/logout") as answer:
            await page.get_by_role("button", name="Win a prize").click()
        response = await answer.value
        assert response.status == 403
        assert response.headers["content-type"].startswith("text/html")
        await expect(page.get_by_text("Error code: cross_site_request")).to_be_visible()
        assert await userinfo_status(context, demo) == 200, "a cross-site form logged the person out"
        # The way forward: the gateway's own confirm page, where the same click does log out.
        await page.get_by_role("link", name="Try again").click()
        await expect(page).to_have_url(f"{demo.gateway_url}/_auth/logout")
        await page.get_by_role("button", name="Log out", exact=True).click()
        await expect(page).to_have_url(f"{demo.gateway_url}/_auth/logged-out")
        assert await userinfo_status(context, demo) == 401
