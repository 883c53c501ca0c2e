"""Registered clients of the development IdP, checked when they are declared."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.protocol.jws import PublicKey

CLIENT_SECRET_BASIC = "client_secret_basic"
CLIENT_SECRET_POST = "client_secret_post"
PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_METHODS = (CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, PRIVATE_KEY_JWT)


@dataclass(frozen=True, slots=True)
class DevClient:
    """A relying party; it must authenticate at the token endpoint exactly with ``auth_method``."""

    client_id: str
    redirect_uris: tuple[str, ...]
    auth_method: str
    client_secret: str | None = None
    jwks: tuple[PublicKey, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A misconfigured test client would make later failures look like gateway bugs: fail here.
        if not self.client_id or ":" in self.client_id:
            raise ValueError("client_id must be non-empty and must not contain ':'")
        if self.auth_method not in AUTH_METHODS:
            raise ValueError(f"auth_method must be one of {', '.join(AUTH_METHODS)}")
        if self.auth_method == PRIVATE_KEY_JWT:
            if not self.jwks or self.client_secret is not None:
                raise ValueError("private_key_jwt clients need jwks and no client_secret")
        elif not self.client_secret:
            raise ValueError(f"{self.auth_method} clients need a client_secret")
        if not self.redirect_uris:
            raise ValueError("at least one redirect_uri is required")
        for uri in (*self.redirect_uris, *self.post_logout_redirect_uris):
            check_redirect_uri(uri)


def check_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"redirect URI {uri!r} must be an absolute http(s) URL")
    if parts.fragment or "#" in uri:
        raise ValueError(f"redirect URI {uri!r} must not have a fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"redirect URI {uri!r} must not carry credentials")


def origin_of(uri: str) -> str:
    """The scheme://host[:port] of a registered redirect URI, as a CSP source expression."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"
