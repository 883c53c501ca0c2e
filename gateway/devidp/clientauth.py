"""Client authentication at the token endpoint (pure: the time arrives as ``now``).

Each client must use exactly the method it is registered with (OIDC Core §9). Secrets are compared
in constant time; client assertions (RFC 7523) are verified through gateway.protocol.jws and their
``jti`` is remembered until they expire so that a replayed assertion is refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import unquote_plus

from gateway.devidp.clients import CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, PRIVATE_KEY_JWT, DevClient
from gateway.devidp.params import Params, single
from gateway.protocol import jws

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = frozenset({"RS256", "ES256"})
MAX_ASSERTION_LIFETIME = 600.0
MAX_CLOCK_SKEW = 60.0


class ClientAuthError(Exception):
    """Rendered as a token-endpoint error; ``challenge`` asks for a WWW-Authenticate: Basic header."""

    def __init__(self, description: str, *, error: str = "invalid_client", challenge: bool = False) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = 401 if error == "invalid_client" else 400
        self.challenge = challenge


class JtiCache(Protocol):
    def add_if_new(self, key: str, value: bool, expires_at: float) -> bool: ...


def authenticate_client(
    params: Params,
    authorization: str | None,
    *,
    clients: Mapping[str, DevClient],
    issuer: str,
    token_endpoint: str,
    now: float,
    jti_cache: JtiCache,
    max_lifetime: float = MAX_ASSERTION_LIFETIME,
) -> DevClient:
    """The registered client that authenticated; ``max_lifetime`` caps an assertion's exp - now."""
    presented = [
        method
        for method, used in (
            (CLIENT_SECRET_BASIC, authorization is not None),
            (CLIENT_SECRET_POST, "client_secret" in params),
            (PRIVATE_KEY_JWT, "client_assertion" in params or "client_assertion_type" in params),
        )
        if used
    ]
    if not presented:
        raise ClientAuthError("client authentication is required", challenge=True)
    if len(presented) > 1:
        # RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
        raise ClientAuthError("more than one client authentication method was used", error="invalid_request")
    method = presented[0]
    if method == CLIENT_SECRET_BASIC:
        client_id, secret = _parse_basic(authorization or "")
    elif method == CLIENT_SECRET_POST:
        posted_id, posted_secret = single(params, "client_id"), single(params, "client_secret")
        if posted_id is None or posted_secret is None:
            raise ClientAuthError("client_secret_post needs client_id and client_secret")
        client_id, secret = posted_id, posted_secret
    else:
        return _authenticate_assertion(
            params,
            clients=clients,
            audiences=(issuer, token_endpoint),
            now=now,
            jti_cache=jti_cache,
            max_lifetime=max_lifetime,
        )
    client = _registered_client(clients, client_id, method, challenge=method == CLIENT_SECRET_BASIC)
    body_client_id = single(params, "client_id")
    if body_client_id is not None and body_client_id != client.client_id:
        raise ClientAuthError("client_id does not match the authenticated client", error="invalid_request")
    expected = (client.client_secret or "").encode("utf-8")
    if not hmac.compare_digest(secret.encode("utf-8"), expected):
        raise ClientAuthError("client authentication failed", challenge=method == CLIENT_SECRET_BASIC)
    return client


def _registered_client(clients: Mapping[str, DevClient], client_id: str, method: str, *, challenge: bool) -> DevClient:
    client = clients.get(client_id)
    if client is None:
        raise ClientAuthError("unknown client", challenge=challenge)
    if client.auth_method != method:
        raise ClientAuthError(
            f"client is registered for {client.auth_method}, not {method}",
            challenge=challenge or client.auth_method == CLIENT_SECRET_BASIC,
        )
    return client


def _parse_basic(header: str) -> tuple[str, str]:
    """HTTP Basic with form-urlencoded client_id and secret (RFC 6749 §2.3.1)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise ClientAuthError("only the Basic authorization scheme is accepted", challenge=True)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise ClientAuthError("malformed Basic credentials", challenge=True) from exc
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon or not raw_id:
        raise ClientAuthError("malformed Basic credentials", challenge=True)
    return unquote_plus(raw_id), unquote_plus(raw_secret)


def _authenticate_assertion(
    params: Params,
    *,
    clients: Mapping[str, DevClient],
    audiences: tuple[str, str],
    now: float,
    jti_cache: JtiCache,
    max_lifetime: float,
) -> DevClient:
    if single(params, "client_assertion_type") != JWT_BEARER:
        raise ClientAuthError(f"client_assertion_type must be {JWT_BEARER}", error="invalid_request")
    assertion = single(params, "client_assertion")
    if assertion is None:
        raise ClientAuthError("client_assertion is missing", error="invalid_request")
    try:
        subject = jws.unverified_claims(assertion).get("sub")
    except jws.JoseError as exc:
        raise ClientAuthError(f"malformed client_assertion ({exc.reason})") from exc
    if not isinstance(subject, str):
        raise ClientAuthError("client_assertion has no sub")
    body_client_id = single(params, "client_id")
    if body_client_id is not None and body_client_id != subject:
        raise ClientAuthError("client_id does not match the client_assertion sub")
    client = _registered_client(clients, subject, PRIVATE_KEY_JWT, challenge=False)
    try:
        claims = jws.verify(assertion, client.jwks, algorithms=ASSERTION_ALGORITHMS)
    except jws.JoseError as exc:
        raise ClientAuthError(f"client_assertion signature not accepted ({exc.reason})") from exc
    _check_assertion_claims(claims, client.client_id, audiences, now, max_lifetime)
    jti = claims["jti"]
    if not jti_cache.add_if_new(f"{client.client_id}\n{jti}", True, float(claims["exp"])):
        raise ClientAuthError("client_assertion jti was already used")
    return client


def _check_assertion_claims(
    claims: Mapping[str, Any], client_id: str, audiences: tuple[str, str], now: float, max_lifetime: float
) -> None:
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise ClientAuthError("client_assertion iss and sub must both be the client_id")
    aud = claims.get("aud")
    aud_values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in audiences for a in aud_values):
        raise ClientAuthError("client_assertion aud must contain the issuer or the token endpoint")
    exp = _number(claims, "exp")
    if exp is None:
        raise ClientAuthError("client_assertion exp is missing or not a number")
    if exp <= now:
        raise ClientAuthError("client_assertion has expired")
    if exp > now + max_lifetime:
        raise ClientAuthError(f"client_assertion exp is more than {max_lifetime / 60:g} minutes ahead")
    for name in ("iat", "nbf"):
        value = _number(claims, name)
        if name in claims and value is None:
            raise ClientAuthError(f"client_assertion {name} must be a number")
        if value is not None and value > now + MAX_CLOCK_SKEW:
            raise ClientAuthError(f"client_assertion {name} is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise ClientAuthError("client_assertion jti is missing")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
