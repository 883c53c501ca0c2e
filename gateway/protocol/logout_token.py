"""OpenID Connect Back-Channel Logout 1.0, §2.4 and §2.6 (pure layer): checks on a signature-verified
logout token. The signature is checked by the provider's client, with the same keys and algorithms as
its ID tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import TokenValidationError
from gateway.protocol.oidc import CLOCK_SKEW

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: A logout token older than this is refused, so that its jti need only be remembered this long.
MAX_TOKEN_AGE = 600.0
#: The ``typ`` header values accepted: explicit typing (§2.4), plain JWT, or none.
ACCEPTED_TYPES = (None, "JWT", "logout+jwt", "application/logout+jwt")


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    jti: str
    sub: str | None
    sid: str | None
    remember_until: float  # how long the jti must stay spent


def _time(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenValidationError(f"missing_{name}")
    return float(value)


def _optional_string(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 255:
        raise TokenValidationError(f"malformed_{name}")
    return value


def validate_logout_token(
    header: Mapping[str, Any], claims: Mapping[str, Any], *, issuer: str, client_id: str, now: float
) -> LogoutRequest:
    """Raises TokenValidationError with a reason word; exact comparisons throughout (attacks.md T25)."""
    if header.get("typ") not in ACCEPTED_TYPES:
        raise TokenValidationError("typ")
    if claims.get("iss") != issuer:
        raise TokenValidationError("issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise TokenValidationError("audience")
    iat = _time(claims, "iat")
    if iat > now + CLOCK_SKEW:
        raise TokenValidationError("issued_in_future")
    if iat < now - MAX_TOKEN_AGE:
        raise TokenValidationError("too_old")
    exp = _time(claims, "exp")
    if now >= exp + CLOCK_SKEW:
        raise TokenValidationError("expired")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise TokenValidationError("missing_jti")
    events = claims.get("events")
    if not isinstance(events, Mapping) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), Mapping):
        raise TokenValidationError("events")
    # An ID token must never pass as a logout token (§2.6 step 5).
    if "nonce" in claims:
        raise TokenValidationError("nonce_present")
    sub, sid = _optional_string(claims, "sub"), _optional_string(claims, "sid")
    if sub is None and sid is None:
        raise TokenValidationError("missing_sub_and_sid")
    return LogoutRequest(jti=jti, sub=sub, sid=sid, remember_until=max(exp, iat + MAX_TOKEN_AGE) + CLOCK_SKEW)
