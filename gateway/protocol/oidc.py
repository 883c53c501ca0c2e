"""OpenID Connect authorization-code flow (pure layer): discovery parsing, PKCE, authorization URL,
callback parsing, token request building, token response parsing and ID token claim validation.

Specs: OIDC Core 1.0 §3.1 (code flow, §3.1.3.7 ID token validation), RFC 7636 (PKCE), RFC 7523
(private_key_jwt), RFC 9207 (iss in the authorization response), RFC 9700 (security BCP).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from gateway.errors import CallbackError, IdpUnavailableError, TokenValidationError
from gateway.protocol.jws import SigningKey, sign

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 60.0
#: IdP error codes we name in metrics; anything else is counted as "other" (labels never carry input).
KNOWN_IDP_ERRORS = frozenset(
    {
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "login_required",
        "consent_required",
        "interaction_required",
    }
)


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    backchannel_authentication_endpoint: str | None = None
    iss_parameter_supported: bool = False
    pushed_authorization_request_endpoint: str | None = None
    #: What discovery says; Keycloak-based OPs say false even when our client's registration requires PAR.
    require_pushed_authorization_requests: bool = False
    # RFC 9101 §6.1 / OIDC Discovery: what the OP decrypts request objects with (empty: it does not).
    request_object_encryption_alg_values_supported: tuple[str, ...] = ()
    request_object_encryption_enc_values_supported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenSet:
    id_token: str
    access_token: str | None
    refresh_token: str | None
    expires_in: int | None


def _endpoint_ok(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def parse_provider_metadata(document: Any, *, expected_issuer: str) -> ProviderMetadata:
    """OIDC Discovery 1.0 §4.3: the issuer in the document must equal the configured one exactly."""
    if not isinstance(document, Mapping):
        raise IdpUnavailableError("discovery_malformed")
    if document.get("issuer") != expected_issuer:
        raise IdpUnavailableError("discovery_issuer_mismatch")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not _endpoint_ok(document.get(name)):
            raise IdpUnavailableError("discovery_malformed")
    optional = {
        n: document.get(n) if _endpoint_ok(document.get(n)) else None
        for n in (
            "userinfo_endpoint",
            "end_session_endpoint",
            "backchannel_authentication_endpoint",
            "pushed_authorization_request_endpoint",
        )
    }
    return ProviderMetadata(
        issuer=expected_issuer,
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        jwks_uri=document["jwks_uri"],
        userinfo_endpoint=optional["userinfo_endpoint"],
        end_session_endpoint=optional["end_session_endpoint"],
        backchannel_authentication_endpoint=optional["backchannel_authentication_endpoint"],
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
        pushed_authorization_request_endpoint=optional["pushed_authorization_request_endpoint"],
        require_pushed_authorization_requests=document.get("require_pushed_authorization_requests") is True,
        request_object_encryption_alg_values_supported=_words(document, "request_object_encryption_alg_"),
        request_object_encryption_enc_values_supported=_words(document, "request_object_encryption_enc_"),
    )


def _words(document: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A discovery list of strings; anything else counts as absent (never guessed)."""
    value = document.get(name + "values_supported")
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def make_pkce_pair() -> tuple[str, str]:
    """RFC 7636 §4.1-4.2: a 43-character verifier and its S256 challenge. S256 always, never plain."""
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorization_parameters(
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    state: str,
    nonce: str,
    code_challenge: str,
    response_mode: str = "query",
    acr_values: Sequence[str] = (),
    prompt: str | None = None,
    login_hint: str | None = None,
    ui_locales: Sequence[str] = (),
    max_age: int | None = None,
) -> dict[str, str]:
    """The authorization request's parameters (OIDC Core §3.1.2.1), whichever way they travel: in the
    redirect's query, pushed (RFC 9126) or inside a request object (RFC 9101)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if response_mode != "query":
        params["response_mode"] = response_mode
    if acr_values:
        params["acr_values"] = " ".join(acr_values)
    if prompt:
        params["prompt"] = prompt
    if max_age is not None:
        params["max_age"] = str(max_age)
    if login_hint:
        params["login_hint"] = login_hint
    if ui_locales:
        params["ui_locales"] = " ".join(ui_locales)
    return params


#: Values new in every login (or taken from the request): percent-encoded each time, never cached.
_FRESH_VALUES = frozenset({"state", "nonce", "code_challenge", "login_hint", "ui_locales", "request", "request_uri"})


def authorization_url(endpoint: str, params: Mapping[str, str]) -> str:
    # The same as urlencode(params, quote_via=quote), but the values that repeat from login to login are
    # percent-encoded once: urllib's quoting was a seventh of the gateway's time per login redirect.
    query = "&".join(
        name + "=" + (quote(value, safe="") if name in _FRESH_VALUES else _quoted_fixed(value))
        for name, value in params.items()
    )
    return endpoint + _query_separator(endpoint) + query


def build_authorization_url(metadata: ProviderMetadata, **parameters: Any) -> str:
    """The plain front-channel request: every parameter in the redirect's query."""
    return authorization_url(metadata.authorization_endpoint, authorization_parameters(**parameters))


@lru_cache(maxsize=1024)
def _quoted_fixed(value: str) -> str:
    """Percent-encoding of a value that comes from configuration (never from the request), or a fixed word."""
    return quote(value, safe="")


@lru_cache(maxsize=64)
def _query_separator(endpoint: str) -> str:
    return "&" if urlsplit(endpoint).query else "?"


def states_match(received: str, expected: str) -> bool:
    return hmac.compare_digest(received.encode(), expected.encode())


def parse_callback(params: Mapping[str, str], *, metadata: ProviderMetadata) -> str:
    """Return the authorization code, or raise CallbackError. The caller has already matched state.

    RFC 9207: when the provider advertises the ``iss`` parameter it must be present and exact; when
    present without being advertised it must still match (a mix-up defence that costs nothing).
    """
    iss = params.get("iss")
    if (iss is not None or metadata.iss_parameter_supported) and (
        iss is None or not hmac.compare_digest(iss.encode(), metadata.issuer.encode())
    ):
        raise CallbackError("issuer_mismatch")
    if "error" in params:
        error = params.get("error", "")
        raise CallbackError(error if error in KNOWN_IDP_ERRORS else "idp_error")
    code = params.get("code", "")
    if not code or len(code) > 2048:
        raise CallbackError("missing_code")
    return code


def build_client_assertion(*, client_id: str, audience: str, key: SigningKey, now: float, ttl: int = 60) -> str:
    """RFC 7523 §3: iss = sub = client_id, aud = the authorization server, fresh jti, short exp."""
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": str(uuid.uuid4()),
        "iat": int(now),
        "exp": int(now) + ttl,
    }
    return sign(claims, key)


def client_authentication(
    *,
    client_id: str,
    client_auth: str,
    client_secret: str | None = None,
    client_assertion: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, form fields) that authenticate the client at a back-channel endpoint (OIDC Core §9)."""
    headers = {"Accept": "application/json"}
    if client_auth == "client_secret_basic":
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
        userpass = f"{quote(client_id, safe='')}:{quote(client_secret or '', safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(userpass.encode()).decode()
        return headers, {}
    if client_auth == "client_secret_post":
        return headers, {"client_id": client_id, "client_secret": client_secret or ""}
    if client_auth == "private_key_jwt":
        if not client_assertion:
            raise ValueError("private_key_jwt needs a client assertion")
        return headers, {
            "client_id": client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client_assertion,
        }
    raise ValueError(f"unknown client_auth {client_auth}")


def build_token_request(
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    client_id: str,
    client_auth: str,
    client_secret: str | None = None,
    client_assertion: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Return (headers, form) for the token endpoint (OIDC Core §3.1.3.1, §9 client authentication)."""
    headers, auth_fields = client_authentication(
        client_id=client_id, client_auth=client_auth, client_secret=client_secret, client_assertion=client_assertion
    )
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
        **auth_fields,
    }
    return headers, form


def parse_token_response(status: int, document: Any) -> TokenSet:
    fields = _token_fields(status, document)
    if fields.id_token is None:
        raise TokenValidationError("missing_id_token")
    return TokenSet(
        id_token=fields.id_token,
        access_token=fields.access_token,
        refresh_token=fields.refresh_token,
        expires_in=fields.expires_in,
    )


@dataclass(frozen=True, slots=True)
class RefreshedTokens:
    """A refresh-token grant's answer: the ID token is optional there (OIDC Core §12.2)."""

    id_token: str | None
    access_token: str | None
    refresh_token: str | None
    expires_in: int | None


def parse_refresh_response(status: int, document: Any) -> RefreshedTokens:
    return _token_fields(status, document)


def _token_fields(status: int, document: Any) -> RefreshedTokens:
    if status != 200 or not isinstance(document, Mapping):
        error = document.get("error") if isinstance(document, Mapping) else None
        reason = (
            error
            if error in ("invalid_grant", "invalid_client", "invalid_request", "unauthorized_client")
            else "token_error"
        )
        raise TokenValidationError(str(reason)) if status < 500 else IdpUnavailableError("token_endpoint_error")
    id_token = document.get("id_token")
    if id_token is not None and (not isinstance(id_token, str) or not id_token):
        raise TokenValidationError("missing_id_token")
    token_type = document.get("token_type")
    if token_type is not None and (not isinstance(token_type, str) or token_type.lower() not in ("bearer", "dpop")):
        raise TokenValidationError("token_type")
    expires_in = document.get("expires_in")
    return RefreshedTokens(
        id_token=id_token,
        access_token=document.get("access_token") if isinstance(document.get("access_token"), str) else None,
        refresh_token=document.get("refresh_token") if isinstance(document.get("refresh_token"), str) else None,
        expires_in=expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool) else None,
    )


def refresh_deadline(now: float, expires_in: int | None) -> float | None:
    """When to refresh: a quarter of the token's life (at most a minute) before it expires."""
    if expires_in is None or expires_in <= 0:
        return None
    return now + expires_in - min(60.0, expires_in / 4)


def _number(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenValidationError(f"missing_{name}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TokenValidationError(f"malformed_{name}")
    return float(value)


#: ``;name=value`` parameters after an acr value (BankID Norway: ``urn:bankid:bid;LOA=4``).
_ACR_PARAMETERS = re.compile(r"(?:;[A-Za-z0-9_.-]{1,32}=[A-Za-z0-9_.:-]{1,64}){1,8}\Z")


def acr_matches(returned: object, requested: Sequence[str]) -> bool:
    """A returned acr matches a requested value X when it is X, or X followed by ``;name=value``
    parameters: providers refine what was asked (``urn:bankid:bid`` -> ``urn:bankid:bid;LOA=4``).
    Nothing else is lenient: case, spaces, a longer value (``urn:bankid:bidx``) or an empty parameter do
    not match."""
    if not isinstance(returned, str):
        return False
    for value in requested:
        if returned == value:
            return True
        if returned.startswith(value + ";") and _ACR_PARAMETERS.match(returned, len(value)):
            return True
    return False


def validate_id_token_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    now: float,
    nonce: str | None,
    acr_values: Sequence[str] = (),
    require_acr: bool = True,
    max_age: float | None = None,
) -> None:
    """OIDC Core §3.1.3.7 steps 2-3 and 9-12 on a signature-verified payload; raises TokenValidationError.

    Comparisons are exact strings (attacks.md T25: no prefix, case or trailing-slash leniency), except that a
    returned acr may carry parameters after the requested value (acr_matches).
    """
    if claims.get("iss") != issuer:
        raise TokenValidationError("issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) for a in audiences):
        raise TokenValidationError("audience")
    if client_id not in audiences:
        raise TokenValidationError("audience")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise TokenValidationError("azp")
    if azp is not None and azp != client_id:
        raise TokenValidationError("azp")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise TokenValidationError("sub")
    exp = _number(claims, "exp", required=True)
    iat = _number(claims, "iat", required=True)
    nbf = _number(claims, "nbf", required=False)
    assert exp is not None and iat is not None
    if now >= exp + CLOCK_SKEW:
        raise TokenValidationError("expired")
    if iat > now + CLOCK_SKEW:
        raise TokenValidationError("issued_in_future")
    if nbf is not None and nbf > now + CLOCK_SKEW:
        raise TokenValidationError("not_yet_valid")
    if nonce is not None:
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce.encode(), nonce.encode()):
            raise TokenValidationError("nonce")
    # Idura signals the eID in "authenticationtype" instead of "acr" (protocols.md §1.3).
    if acr_values and require_acr and not acr_matches(claims.get("acr", claims.get("authenticationtype")), acr_values):
        raise TokenValidationError("acr")
    if max_age is not None:
        auth_time = _number(claims, "auth_time", required=True)
        assert auth_time is not None
        if now > auth_time + max_age + CLOCK_SKEW:
            raise TokenValidationError("auth_time")


def validate_userinfo(claims: Any, *, issuer: str, client_id: str, subject: str) -> None:
    """OIDC Core §5.3.2-5.3.4: the answer is a JSON object whose ``sub`` is the ID token's (else it may be
    someone else's answer: token substitution); a signed answer's iss and aud, when present, are ours."""
    if not isinstance(claims, Mapping):
        raise TokenValidationError("userinfo_malformed")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not hmac.compare_digest(sub.encode(), subject.encode()):
        raise TokenValidationError("userinfo_sub_mismatch")
    if "iss" in claims and claims["iss"] != issuer:
        raise TokenValidationError("userinfo_issuer")
    if "aud" in claims:
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or client_id not in audiences:
            raise TokenValidationError("userinfo_audience")


#: Claims about the token or the authentication event: they come from the ID token only, never UserInfo.
ID_TOKEN_ONLY_CLAIMS = frozenset(
    {"iss", "aud", "azp", "exp", "iat", "nbf", "jti", "nonce", "sid", "acr", "amr", "auth_time", "at_hash", "c_hash"}
)


def merge_userinfo(id_token_claims: Mapping[str, Any], userinfo: Mapping[str, Any]) -> dict[str, Any]:
    """The claims a login maps: the ID token's, and UserInfo's for those the ID token lacks (BankID Norway's
    nnin, Signicat's nin). A claim in both must have the same value: two answers are refused, not chosen from."""
    merged = dict(id_token_claims)
    for name, value in userinfo.items():
        if name in ID_TOKEN_ONLY_CLAIMS:
            continue
        if name in merged and merged[name] != value:
            raise TokenValidationError("userinfo_conflict")
        merged[name] = value
    return merged
