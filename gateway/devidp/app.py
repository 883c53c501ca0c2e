"""Composition root of the development IdP: ``create_devidp_app`` wires state, routes and headers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway.devidp import pages
from gateway.devidp.authorize import handle_authorize, handle_decide
from gateway.devidp.authrequest import SUPPORTED_ACR_VALUES, SUPPORTED_UI_LOCALES
from gateway.devidp.bankid_app import APP_PATH, handle_app, handle_cancel, handle_identify, handle_open
from gateway.devidp.bankid_control import (
    handle_decline,
    handle_faults_add,
    handle_faults_clear,
    handle_faults_show,
    handle_poll_times,
    handle_scan,
)
from gateway.devidp.bankid_control import handle_identify as handle_control_identify
from gateway.devidp.clientauth import ASSERTION_ALGORITHMS
from gateway.devidp.clients import AUTH_METHODS, DevClient
from gateway.devidp.headless import handle_headless_authorize
from gateway.devidp.logout import handle_logout
from gateway.devidp.persons import PERSON_CLAIMS
from gateway.devidp.state import STATE, DevIdpState, Endpoints
from gateway.devidp.store import StoreFullError
from gateway.devidp.token import handle_token, handle_userinfo
from gateway.keys import generate_rsa_pem, public_jwk, signing_key_from_pem
from gateway.protocol.jws import SigningKey

#: A QR frame's time has at most six digits (gateway.protocol.bankid); a day is plenty for tests.
MAX_HEADLESS_EXPIRES_IN = 86_400
_TOKEN_CLAIMS = ("sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce", "acr", "amr", "at_hash")


def create_devidp_app(
    *,
    issuer: str,
    clients: Sequence[DevClient],
    signing_key: SigningKey | None = None,
    clock: Callable[[], float] = time.time,
    headless_interval: float = 5.0,
    headless_expires_in: int = 120,
) -> web.Application:
    """An OpenID Provider for development, demos and tests. Never expose it outside loopback.

    Besides the code flow it speaks Idura's Headless flow for Swedish BankID (``/headless/authorize``
    and the headless grant at ``/token``), with a simulated BankID app at ``/bankid-app``.
    ``headless_interval`` is the least time between two polls of one order (faster: ``slow_down``);
    ``headless_expires_in`` is the lifetime of an order in seconds.
    """
    _check_issuer(issuer)
    if not math.isfinite(headless_interval) or headless_interval < 0:
        raise ValueError("headless_interval must be a finite number of seconds, at least 0")
    if isinstance(headless_expires_in, bool) or not isinstance(headless_expires_in, int):
        raise ValueError("headless_expires_in must be a whole number of seconds")
    if not 1 <= headless_expires_in <= MAX_HEADLESS_EXPIRES_IN:
        raise ValueError(f"headless_expires_in must be from 1 to {MAX_HEADLESS_EXPIRES_IN} seconds")
    registry = {c.client_id: c for c in clients}
    if len(registry) != len(clients):
        raise ValueError("client_id values must be unique")
    key = signing_key or signing_key_from_pem(generate_rsa_pem(2048))
    state = DevIdpState(Endpoints(issuer), key, registry, clock, float(headless_interval), headless_expires_in)
    app = web.Application(middlewares=[_headers_middleware])
    app[STATE] = state
    path = state.endpoints.path
    app.router.add_get(path("/.well-known/openid-configuration"), handle_discovery)
    app.router.add_get(path("/jwks"), handle_jwks)
    app.router.add_get(path("/authorize"), handle_authorize)
    app.router.add_post(path("/authorize/decide"), handle_decide)
    app.router.add_post(path("/token"), handle_token)
    app.router.add_get(path("/userinfo"), handle_userinfo)
    app.router.add_get(path("/logout"), handle_logout)
    _add_headless_routes(app, path)
    return app


def _add_headless_routes(app: web.Application, path: Callable[[str], str]) -> None:
    app.router.add_post(path("/headless/authorize"), handle_headless_authorize)
    # Development only: the simulated BankID app and the test controls.
    app.router.add_get(path(APP_PATH), handle_app)
    app.router.add_post(path(APP_PATH + "/open"), handle_open)
    app.router.add_post(path(APP_PATH + "/identify"), handle_identify)
    app.router.add_post(path(APP_PATH + "/cancel"), handle_cancel)
    app.router.add_post(path("/_dev/bankid/scan"), handle_scan)
    app.router.add_post(path("/_dev/bankid/identify"), handle_control_identify)
    app.router.add_post(path("/_dev/bankid/decline"), handle_decline)
    app.router.add_get(path("/_dev/headless/faults"), handle_faults_show)
    app.router.add_get(path("/_dev/headless/polls"), handle_poll_times)
    app.router.add_post(path("/_dev/headless/faults"), handle_faults_add)
    app.router.add_delete(path("/_dev/headless/faults"), handle_faults_clear)


def _check_issuer(issuer: str) -> None:
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("issuer must be an http(s) URL without query or fragment")
    if issuer.endswith("/"):
        raise ValueError("issuer must not end with '/'")


async def handle_discovery(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    url = state.endpoints.url
    document: dict[str, Any] = {
        "issuer": state.issuer,
        "authorization_endpoint": url("/authorize"),
        "token_endpoint": url("/token"),
        "userinfo_endpoint": url("/userinfo"),
        "jwks_uri": url("/jwks"),
        "end_session_endpoint": url("/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [state.signing_key.alg],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": sorted(ASSERTION_ALGORITHMS, reverse=True),
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile"],
        "claims_supported": [*_TOKEN_CLAIMS, *PERSON_CLAIMS],
        "ui_locales_supported": list(SUPPORTED_UI_LOCALES),
        "acr_values_supported": list(SUPPORTED_ACR_VALUES),
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        # Defaults to true in OpenID Connect Discovery, so it has to be said.
        "request_uri_parameter_supported": False,
    }
    return web.json_response(document)


async def handle_jwks(request: web.Request) -> web.StreamResponse:
    return web.json_response({"keys": [public_jwk(request.app[STATE].signing_key)]})


@web.middleware
async def _headers_middleware(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = pages.html_response(exc.reason, pages.error_page(exc.reason), status=exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except StoreFullError:
        response = pages.html_response(
            "Busy", pages.error_page("Too many requests in flight; try again later."), status=503
        )
    headers = response.headers
    headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    headers.setdefault("Cache-Control", "no-store")
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    return response
