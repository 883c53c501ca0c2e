"""How an authorization request travels (pure layer): in the redirect's query, pushed to the provider first
(RFC 9126, PAR), and/or as a request object, a JWT signed by the client (RFC 9101, JAR; OIDC Core §6).

The per-login parameters an application may ask for (acr_values, login_hint, ui_locales) are checked here
too: only values the provider's configuration allows, in a shape that cannot carry anything else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import BadRequestError, IdpUnavailableError, ProviderRefusedError

#: PAR error codes we name in metrics (RFC 9126 §2.3, RFC 6749 §5.2); others are counted as "par_error".
KNOWN_PAR_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "unauthorized_client",
        "invalid_scope",
        "invalid_request_object",
        "invalid_request_uri",
        "request_not_supported",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
    }
)
#: A request object lives as long as a login may take to start; the provider checks exp (FAPI: at most 60 min).
REQUEST_OBJECT_TTL = 300
MAX_REQUEST_URI_CHARS = 2048
#: RFC 9126 §2.2: expires_in is the request_uri's lifetime; anything over 10 minutes is not a PAR answer.
MAX_PAR_EXPIRES_IN = 600
_REQUEST_URI = re.compile(r"[\x21-\x7e]{1,2048}")
#: A BCP 47 language tag as browsers send them (sv, nb-NO, en-GB, zh-Hant-TW).
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}")
MAX_UI_LOCALES = 5
#: The one placeholder of an allowed_login_hints entry: a national identity number.
NATIONAL_ID_PLACEHOLDER = "{national_id}"
#: What a national identity number may look like inside a login_hint (every Nordic scheme: digits, the
#: Finnish century sign and check character); the national-ID checks of the claims apply after login.
_NATIONAL_ID_IN_HINT = r"[0-9]{6}[-+A-FU-Y]?[0-9]{3,5}[0-9A-Y]?"
MAX_LOGIN_HINT_CHARS = 256


@dataclass(frozen=True, slots=True)
class PushedRequest:
    """The provider's answer to a pushed authorization request."""

    request_uri: str
    expires_in: int


def use_par(mode: str, *, endpoint: str | None, required_by_discovery: bool) -> bool:
    """Whether this login is pushed. ``required`` without an endpoint is the provider's fault, not a reason to
    fall back to the front channel (the client's registration may refuse anything else, as Keycloak does)."""
    if mode == "off":
        return False
    if mode == "required" or required_by_discovery:
        if endpoint is None:
            raise IdpUnavailableError("par_endpoint_missing")
        return True
    return False


def request_object_claims(
    params: Mapping[str, str], *, client_id: str, audience: str, now: float, ttl: int = REQUEST_OBJECT_TTL
) -> dict[str, Any]:
    """RFC 9101 §4: every authorization parameter as a claim, plus iss (the client), aud (the provider's
    issuer), a fresh jti and a short life (iat, nbf, exp), which OPs such as Idura's FTN profile require."""
    claims: dict[str, Any] = dict(params)
    claims.update(
        {
            "iss": client_id,
            "aud": audience,
            "jti": str(uuid.uuid4()),
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + ttl,
        }
    )
    return claims


def front_channel_with_request_object(params: Mapping[str, str], request_object: str) -> dict[str, str]:
    """The redirect's query when the parameters travel in a request object without PAR. OIDC Core §6.1: a
    valid OAuth request still carries client_id, response_type and a scope with openid in the query, and
    they must equal the request object's."""
    return {
        "client_id": params["client_id"],
        "response_type": params["response_type"],
        "scope": params["scope"],
        "request": request_object,
    }


def front_channel_after_par(client_id: str, pushed: PushedRequest) -> dict[str, str]:
    """RFC 9126 §4: after a push the browser carries only client_id and the request_uri."""
    return {"client_id": client_id, "request_uri": pushed.request_uri}


def parse_par_response(status: int | None, document: Any) -> PushedRequest:
    """RFC 9126 §2.2-2.3. A refusal (4xx with an error) is the provider's answer to our request: a provider
    error page, counted by its code; no answer or a 5xx is the provider being unavailable."""
    if status is None:
        raise IdpUnavailableError("par_endpoint_unreachable")
    if status >= 500:
        raise IdpUnavailableError("par_endpoint_error")
    if status not in (200, 201):
        error = document.get("error") if isinstance(document, Mapping) else None
        raise ProviderRefusedError(f"par_{error}" if error in KNOWN_PAR_ERRORS else "par_error")
    if not isinstance(document, Mapping):
        raise ProviderRefusedError("par_malformed_response")
    request_uri = document.get("request_uri")
    expires_in = document.get("expires_in")
    if not isinstance(request_uri, str) or not _REQUEST_URI.fullmatch(request_uri):
        raise ProviderRefusedError("par_malformed_response")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 0 < expires_in <= MAX_PAR_EXPIRES_IN:
        raise ProviderRefusedError("par_malformed_response")
    return PushedRequest(request_uri=request_uri, expires_in=expires_in)


def requested_acr_values(value: str | None, allowed: Sequence[str]) -> tuple[str, ...] | None:
    """acr_values an application asked for on /_auth/login: only values the provider's configuration lists
    (None when not asked: the provider's configured acr_values apply)."""
    if value is None:
        return None
    values = tuple(value.split(" "))
    if not value or len(values) > len(allowed) or len(set(values)) != len(values) or not set(values) <= set(allowed):
        raise BadRequestError(
            "acr_values_not_allowed",
            public_message="The login asked for an assurance level this provider does not offer.",
        )
    return values


def requested_ui_locales(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    tags = tuple(value.split(" "))
    if not value or len(tags) > MAX_UI_LOCALES or not all(_LANGUAGE_TAG.fullmatch(tag) for tag in tags):
        raise BadRequestError(
            "ui_locales_malformed", public_message="The login asked for languages in an unknown form."
        )
    return tags


def login_hint_pattern(allowed: str) -> re.Pattern[str]:
    """An allowed_login_hints entry as a full-match pattern: literal text, at most one {national_id}."""
    literal, placeholder, rest = allowed.partition(NATIONAL_ID_PLACEHOLDER)
    if not placeholder:
        return re.compile(re.escape(allowed))
    return re.compile(re.escape(literal) + f"({_NATIONAL_ID_IN_HINT})" + re.escape(rest))


@dataclass(frozen=True, slots=True)
class LoginHint:
    value: str
    #: The hint names a person by national identity number: it must never travel in a URL in clear.
    carries_national_id: bool


def requested_login_hint(value: str | None, allowed: Sequence[str]) -> LoginHint | None:
    """A login_hint an application asked for: one of the provider's allowed_login_hints forms, exactly."""
    if value is None:
        return None
    if 0 < len(value) <= MAX_LOGIN_HINT_CHARS:
        for entry in allowed:
            if login_hint_pattern(entry).fullmatch(value):
                return LoginHint(value=value, carries_national_id=NATIONAL_ID_PLACEHOLDER in entry)
    raise BadRequestError(
        "login_hint_not_allowed", public_message="The login asked for a login hint this provider does not accept."
    )
