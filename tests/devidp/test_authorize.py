"""The authorization endpoint and the login page: strict validation, escaping, banner, CSP."""

from __future__ import annotations

from html import escape
from typing import Any

import pytest

from gateway.devidp import TEST_PERSONS

from .conftest import FakeClock
from .driver import (
    BANNER,
    ISSUER,
    Idp,
    authorize_params,
    choose,
    open_login_page,
    parse_forms,
    pkce_pair,
    redirect_params,
)


def params(client_id: str = "basic-client", **overrides: str | None) -> dict[str, str]:
    return authorize_params(client_id, pkce_pair()[1], **overrides)


async def test_login_page_lists_every_person_and_cancel(idp: Idp) -> None:
    response = await idp.get("/authorize", params=params())
    html = await response.text()
    assert response.status == 200 and BANNER in html
    buttons = [b for form in parse_forms(html) for b in form.buttons]
    assert buttons == [f"Log in as {p.name}" for p in TEST_PERSONS] + ["Cancel"]
    assert "Log in as Åsa Öberg" in buttons
    for form in parse_forms(html):
        assert (form.action, form.method) == ("/authorize/decide", "post")
        # Only the request id and the user's choice travel in the form, nothing that binds the code.
        assert set(form.fields) <= {"request_id", "person", "cancel"}
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp
    assert "form-action 'self' http://127.0.0.1:8080" in csp and "script-src" not in csp
    assert "<script" not in html
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "overrides",
    [
        {"redirect_uri": "http://127.0.0.1:8080/oauth2/callback/"},
        {"redirect_uri": "http://evil.example/cb"},
        {"redirect_uri": None},
        {"client_id": "unknown"},
        {"client_id": None},
    ],
)
async def test_bad_client_or_redirect_uri_never_redirects(idp: Idp, overrides: dict[str, Any]) -> None:
    response = await idp.get("/authorize", params=params(**overrides), allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers
    assert BANNER in await response.text()


async def test_repeated_redirect_uri_never_redirects(idp: Idp) -> None:
    query = [(k, v) for k, v in params().items()] + [("redirect_uri", "http://evil.example/cb")]
    response = await idp.get("/authorize", params=query, allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "error", "description"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request", "plain is not allowed"),
        ({"code_challenge_method": None}, "invalid_request", "S256"),
        ({"code_challenge": None}, "invalid_request", "code_challenge"),
        ({"code_challenge": "short"}, "invalid_request", "code_challenge"),
        ({"code_challenge": "a" * 128}, "invalid_request", "code_challenge"),
        ({"nonce": None}, "invalid_request", "nonce"),
        ({"nonce": "n" * 513}, "invalid_request", "nonce"),
        ({"scope": "profile"}, "invalid_request", "openid"),
        ({"response_type": None}, "invalid_request", "response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type", "code"),
        ({"response_mode": "fragment"}, "invalid_request", "response_mode"),
        ({"prompt": "consent"}, "invalid_request", "prompt"),
        ({"prompt": "none"}, "login_required", ""),
        ({"ui_locales": "sv <x>"}, "invalid_request", "ui_locales"),
        ({"request_uri": "urn:x"}, "request_uri_not_supported", ""),
    ],
)
async def test_request_errors_are_redirected(idp: Idp, overrides: dict[str, Any], error: str, description: str) -> None:
    query = params(**overrides)
    answer = redirect_params(await idp.get("/authorize", params=query, allow_redirects=False))
    assert answer["error"] == error and description in answer["error_description"]
    assert answer["state"] == query["state"] and answer["iss"] == ISSUER
    assert "code" not in answer


async def test_missing_or_oversized_state_is_an_error_without_state(idp: Idp) -> None:
    for state in (None, "s" * 513):
        answer = redirect_params(await idp.get("/authorize", params=params(state=state), allow_redirects=False))
        assert answer["error"] == "invalid_request" and "state" in answer["error_description"]
        assert "state" not in answer


async def test_state_of_512_characters_is_accepted(idp: Idp) -> None:
    await open_login_page(idp, params(state="s" * 512, nonce="n" * 512))


async def test_errors_use_the_requested_form_post_mode(idp: Idp) -> None:
    query = params(response_mode="form_post", code_challenge_method="plain")
    response = await idp.get("/authorize", params=query, allow_redirects=False)
    assert response.status == 200 and "Location" not in response.headers
    (form,) = parse_forms(await response.text())
    assert form.fields["error"] == "invalid_request" and form.fields["state"] == query["state"]


async def test_cancel_is_access_denied(idp: Idp) -> None:
    query = params()
    page = await open_login_page(idp, query)
    answer = redirect_params(await choose(idp, page, "Cancel"))
    assert answer == {
        "error": "access_denied",
        "error_description": "user cancelled",
        "state": query["state"],
        "iss": ISSUER,
    }


async def test_a_login_request_is_used_once(idp: Idp) -> None:
    page = await open_login_page(idp, params())
    assert (await choose(idp, page, "Log in as Sven Svensson")).status == 303
    again = await choose(idp, page, "Log in as Sven Svensson")
    assert again.status == 400 and BANNER in await again.text()


async def test_a_login_request_expires_after_10_minutes(idp: Idp, clock: FakeClock) -> None:
    page = await open_login_page(idp, params())
    clock.advance(601)
    response = await choose(idp, page, "Log in as Sven Svensson")
    assert response.status == 400 and "Location" not in response.headers


@pytest.mark.parametrize(
    "tamper",
    [
        {"request_id": "forged"},
        {"person": "nobody"},
        {"cancel": "1"},  # a person and cancel at once
    ],
)
async def test_tampered_decisions_are_refused(idp: Idp, tamper: dict[str, str]) -> None:
    page = await open_login_page(idp, params())
    form = next(f for f in parse_forms(page) if "Log in as Sven Svensson" in f.buttons)
    response = await idp.post(form.action, data={**form.fields, **tamper}, allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers


async def test_reflected_input_is_escaped(idp: Idp) -> None:
    evil = "<script>alert(1)</script>\"'&"
    query = params(state=evil, login_hint=evil)
    html = await open_login_page(idp, query)
    assert "<script>" not in html and escape(evil, quote=True) in html

    form_post = await idp.get(
        "/authorize", params={**query, "response_mode": "form_post", "nonce": ""}, allow_redirects=False
    )
    text = await form_post.text()
    assert BANNER in text and "<script>alert" not in text and escape(evil, quote=True) in text
    (form,) = parse_forms(text)
    assert form.fields["state"] == evil  # escaped in HTML, intact for the client


async def test_get_only(idp: Idp) -> None:
    response = await idp.post("/authorize", data=params())
    assert response.status == 405 and BANNER in await response.text()
