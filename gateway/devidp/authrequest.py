"""Validation of authorization requests (pure: no aiohttp, no clock).

The checks run in two stages, because they fail in two different ways (RFC 6749 §4.1.2.1): while
the client or its redirect URI is in doubt, nothing may be sent to that URI, so the user sees an
error page; after that, every problem is reported back to the client by redirect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.devidp.clients import DevClient
from gateway.devidp.params import Params, RepeatedParameterError, single

ACR_LOA3 = "urn:eid:dev:loa3"
ACR_LOA4 = "urn:eid:dev:loa4"
SUPPORTED_ACR_VALUES = (ACR_LOA3, ACR_LOA4)
SUPPORTED_UI_LOCALES = ("sv", "nb", "da", "en")
RESPONSE_MODES = ("query", "form_post")
MAX_STATE_LENGTH = 512
# An S256 challenge is the base64url SHA-256 of the verifier: always exactly 43 characters.
# Anything longer is a verifier sent by mistake, so it is refused here rather than at /token.
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}\Z")
_LOCALE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*\Z")


class UnsafeRedirectError(ValueError):
    """The client or redirect URI is unknown: show an error page, never redirect."""


@dataclass(frozen=True, slots=True)
class ResponseTarget:
    """Where and how the answer to an authorization request goes back to the client."""

    redirect_uri: str
    response_mode: str
    state: str | None


class AuthorizationError(ValueError):
    """A request error reported to the client at ``target`` (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str, target: ResponseTarget) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.target = target


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client_id: str
    target: ResponseTarget
    state: str
    nonce: str
    scope: tuple[str, ...]
    code_challenge: str
    acr: str
    prompt: str | None
    ui_locales: tuple[str, ...]
    login_hint: str | None


def parse_authorization_request(params: Params, clients: Mapping[str, DevClient]) -> AuthorizationRequest:
    client, redirect_uri = _resolve_client(params)
    registered = clients.get(client)
    if registered is None:
        raise UnsafeRedirectError("Unknown client_id.")
    if redirect_uri not in registered.redirect_uris:
        raise UnsafeRedirectError("redirect_uri is not registered for this client.")
    target = _response_target(params, redirect_uri)
    try:
        return _validate(params, client, target)
    except _Invalid as exc:
        raise AuthorizationError(exc.error, exc.description, target) from None
    except RepeatedParameterError as exc:
        raise AuthorizationError("invalid_request", str(exc), target) from None


def _resolve_client(params: Params) -> tuple[str, str]:
    try:
        client_id = single(params, "client_id")
        redirect_uri = single(params, "redirect_uri")
    except RepeatedParameterError as exc:
        raise UnsafeRedirectError(f"Parameter {exc.name} must not be repeated.") from exc
    if client_id is None:
        raise UnsafeRedirectError("client_id is missing.")
    if redirect_uri is None:
        raise UnsafeRedirectError("redirect_uri is missing.")
    return client_id, redirect_uri


def _response_target(params: Params, redirect_uri: str) -> ResponseTarget:
    """Best-effort state and response mode, so that errors about them can still be delivered."""
    state = _lenient(params, "state")
    if state is not None and len(state) > MAX_STATE_LENGTH:
        state = None
    mode = _lenient(params, "response_mode")
    return ResponseTarget(redirect_uri, mode if mode in RESPONSE_MODES else "query", state)


def _lenient(params: Params, name: str) -> str | None:
    values = params.get(name, ())
    return values[0] if len(values) == 1 and values[0] else None


class _Invalid(Exception):
    def __init__(self, description: str, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.description = description
        self.error = error


def _validate(params: Params, client_id: str, target: ResponseTarget) -> AuthorizationRequest:
    for name in ("request", "request_uri"):
        if single(params, name) is not None:
            raise _Invalid(f"{name} is not supported", f"{name}_not_supported")
    response_type = single(params, "response_type")
    if response_type is None:
        raise _Invalid("response_type is missing")
    if response_type != "code":
        raise _Invalid("only response_type=code is supported", "unsupported_response_type")
    mode = single(params, "response_mode")
    if mode is not None and mode not in RESPONSE_MODES:
        raise _Invalid("response_mode must be query or form_post")
    scope = tuple((single(params, "scope") or "").split(" "))
    if "openid" not in scope:
        raise _Invalid("scope must contain openid")
    challenge = single(params, "code_challenge")
    method = single(params, "code_challenge_method")
    if challenge is None:
        raise _Invalid("code_challenge is required (PKCE)")
    if method != "S256":
        refused = " (plain is not allowed)" if method == "plain" else ""
        raise _Invalid(f"code_challenge_method must be S256{refused}")
    if not _S256_CHALLENGE.match(challenge):
        raise _Invalid("code_challenge must be a base64url SHA-256 value of 43 characters")
    state = _bounded(params, "state")
    nonce = _bounded(params, "nonce")
    prompt = single(params, "prompt")
    if prompt not in (None, "none", "login"):
        raise _Invalid("prompt must be none or login")
    if prompt == "none":
        # There is no single sign-on session here: every login needs the user's choice.
        raise _Invalid("the user must choose a test person", "login_required")
    ui_locales = tuple((single(params, "ui_locales") or "").split())
    if len(ui_locales) > 10 or not all(_LOCALE.match(tag) for tag in ui_locales):
        raise _Invalid("ui_locales must be space-separated language tags")
    login_hint = single(params, "login_hint")
    if login_hint is not None and len(login_hint) > 256:
        raise _Invalid("login_hint is too long")
    acr_values = single(params, "acr_values") or ""
    if len(acr_values) > 1024:
        raise _Invalid("acr_values is too long")
    return AuthorizationRequest(
        client_id=client_id,
        target=target,
        state=state,
        nonce=nonce,
        scope=scope,
        code_challenge=challenge,
        acr=select_acr(acr_values.split()),
        prompt=prompt,
        ui_locales=ui_locales,
        login_hint=login_hint,
    )


def _bounded(params: Params, name: str) -> str:
    value = single(params, name)
    if value is None:
        raise _Invalid(f"{name} is required")
    if len(value) > MAX_STATE_LENGTH:
        raise _Invalid(f"{name} must be at most {MAX_STATE_LENGTH} characters")
    return value


def select_acr(requested: list[str]) -> str:
    """The most preferred requested ACR that is supported (OIDC Core §3.1.2.1), else LoA 3."""
    return next((acr for acr in requested if acr in SUPPORTED_ACR_VALUES), ACR_LOA3)
