"""Page building blocks that take values from outside: a provider's URL must not change our CSP."""

from __future__ import annotations

import pytest

from gateway import pages


@pytest.mark.parametrize(("url", "expected"), [
    ("https://idp.example.com/logout?x=1", "https://idp.example.com"),
    ("https://idp.example.com:8443/oidc/logout", "https://idp.example.com:8443"),
    ("http://127.0.0.1:8081/logout", "http://127.0.0.1:8081"),
    # A hostile or broken metadata document cannot add a directive, a wildcard or a scheme source.
    ("https://idp.example.com; script-src *", None),
    ("https://*.example.com/logout", None),
    ("javascript:alert(1)", None),
    ("data:text/html,x", None),
    ("https://idp.example.com:99999/", None),
    ("https:///logout", None),
    ("https://idp.example.com\t/logout", None),
])
def test_csp_origin(url: str, expected: str | None) -> None:
    assert pages.csp_origin(url) == expected


def test_logout_confirm_page_allows_only_its_own_continuation() -> None:
    plain = pages.logout_confirm_page()
    assert "form-action 'self';" in plain.headers["Content-Security-Policy"]
    hostile = pages.logout_confirm_page(continues_to="https://idp.example.com; script-src *")
    assert hostile.headers["Content-Security-Policy"] == plain.headers["Content-Security-Policy"]
    allowed = pages.logout_confirm_page(continues_to="https://idp.example.com/logout?client_id=a")
    assert "form-action 'self' https://idp.example.com;" in allowed.headers["Content-Security-Policy"]
