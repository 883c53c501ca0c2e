"""Drives the dev IdP by hand, like a browser plus a relying party would."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from gateway.protocol import jws
from gateway.protocol.jws import SigningKey

ISSUER = "http://127.0.0.1:8081"
TOKEN_ENDPOINT = ISSUER + "/token"
REDIRECT_URI = "http://127.0.0.1:8080/oauth2/callback"
LOGGED_OUT_URI = "http://127.0.0.1:8080/logged-out"
BANNER = "Development identity provider — not for production use"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

Idp = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Idp]]  # the aiohttp_client fixture


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(client_id: str, challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: both parts form-urlencoded before base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def client_assertion(key: SigningKey, client_id: str, now: float, **overrides: Any) -> str:
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "jti": secrets.token_urlsafe(16),
        "iat": int(now),
        "exp": int(now) + 120,
    }
    claims.update(overrides)
    return jws.sign({k: v for k, v in claims.items() if v is not None}, key)


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[str] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._button: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get")))
        elif tag == "input" and a.get("type") == "hidden":
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "button":
            self._button = []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.forms[-1].buttons.append("".join(self._button))
            self._button = None


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def form_with_button(html: str, text: str) -> Form:
    matches = [f for f in parse_forms(html) if text in f.buttons]
    assert len(matches) == 1, f"expected one form with button {text!r}"
    return matches[0]


def redirect_params(response: ClientResponse, expected_base: str = REDIRECT_URI) -> dict[str, str]:
    assert response.status == 303, response.status
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == expected_base
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    assert all(len(v) == 1 for v in query.values())
    return {k: v[0] for k, v in query.items()}


async def open_login_page(client: Idp, params: dict[str, str]) -> str:
    response = await client.get("/authorize", params=params, allow_redirects=False)
    assert response.status == 200, await response.text()
    return await response.text()


async def choose(client: Idp, page: str, button: str) -> ClientResponse:
    form = form_with_button(page, button)
    assert form.method == "post"
    return await client.post(form.action, data=form.fields, allow_redirects=False)


@dataclass
class Authorization:
    params: dict[str, str]
    verifier: str
    code: str


async def authorize(
    client: Idp, client_id: str, *, person: str = "Sven Svensson", **overrides: str | None
) -> Authorization:
    verifier, challenge = pkce_pair()
    params = authorize_params(client_id, challenge, **overrides)
    page = await open_login_page(client, params)
    answer = redirect_params(await choose(client, page, f"Log in as {person}"))
    assert answer["state"] == params["state"] and answer["iss"] == ISSUER
    return Authorization(params, verifier, answer["code"])


def token_form(auth: Authorization, **overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": auth.code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": auth.verifier,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}
