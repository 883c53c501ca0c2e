"""Sign out at the OpenID Provider itself, as a person does on the provider's own site.

RP-initiated logout at oidc-provider's end_session_endpoint with the browser's OP session cookie and no client
parameters: the provider asks "Do you want to sign-out?", the person clicks "Yes, sign me out" (the form's
``logout=yes``), and the provider ends its session. Before it answers that confirmation, oidc-provider POSTs a
logout token to the backchannel_logout_uri of every client of that session (it awaits the deliveries; one that
fails is only reported, the person is signed out anyway).
"""

from __future__ import annotations

import aiohttp

from tests.interop.test_oidc_provider_login import Page, navigate, only_form, submit


async def end_session_endpoint(browser: aiohttp.ClientSession, issuer: str) -> str:
    async with browser.get(f"{issuer}/.well-known/openid-configuration") as response:
        assert response.status == 200, f"OP discovery: {response.status}"
        document = await response.json(content_type=None)
    endpoint = document.get("end_session_endpoint")
    assert isinstance(endpoint, str) and endpoint.startswith(issuer), f"no end_session_endpoint: {document}"
    return endpoint


async def log_out_at_op(browser: aiohttp.ClientSession, issuer: str) -> Page:
    """Sign the browser's OP session out at the OP; returns the OP's "signed out" page.

    ``browser`` must hold the OP's session cookie (it signed in at the OP). Raises AssertionError if the OP does
    not show its confirmation or does not end on its success page.
    """
    endpoint = await end_session_endpoint(browser, issuer)
    page = await navigate(browser, "GET", endpoint)
    assert page.status == 200, f"GET {endpoint}: {page.status} {page.text[:500]}"
    form = only_form(page)  # <form id="op.logoutForm"> with the xsrf token; the buttons are outside it
    assert "xsrf" in form.fields, f"expected the OP's logout confirmation, got {form}"
    assert "Do you want to sign-out" in page.text, (
        f"the OP did not ask to sign out: the browser has no OP session?\n{page.text[:1000]}"
    )
    form.fields["logout"] = "yes"  # "Yes, sign me out": <button form="op.logoutForm" name="logout" value="yes">
    page = await submit(browser, page, form)
    assert page.url == f"{endpoint}/success", f"the OP's logout ended elsewhere: {page.trail}"
    assert page.status == 200, f"GET {page.url}: {page.status} {page.text[:500]}"
    return page
