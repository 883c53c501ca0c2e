"""Forward-auth (pure layer): reconstruct the request an ingress asks us to judge.

One contract for nginx ``auth_request`` / ingress-nginx (``X-Original-URL`` + ``X-Original-Method``),
Traefik ``forwardAuth`` (``X-Forwarded-Method/-Proto/-Host/-Uri``) and Envoy ``ext_authz`` HTTP service
(the original path appended to ``/_auth/verify``, method and Host as sent). These headers are
believed only from trusted proxies (the caller checks that first); anything missing, repeated or
malformed is refused, never guessed (attacks.md T20).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from gateway.protocol.paths import PathError, encode_path, normalize_request_path

Mode = Literal["nginx", "traefik", "envoy"]
_METHOD = re.compile(r"[A-Z]{1,16}")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?")
MAX_URI = 4096


class ForwardAuthError(ValueError):
    """The request to judge could not be reconstructed; ``reason`` is a bounded word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OriginalRequest:
    mode: Mode
    method: str
    scheme: str
    host: str  # lower-case host[:port] as the client sent it
    path: str  # normalised, the one the decision is made on
    query: str

    @property
    def hostname(self) -> str:
        return self.host.rsplit(":", 1)[0] if ":" in self.host else self.host

    def target(self) -> str:
        """The request target as it must be sent again: the path re-encoded, the query untouched."""
        return encode_path(self.path) + (f"?{self.query}" if self.query else "")

    def url(self) -> str:
        return f"{self.scheme}://{self.host}{self.target()}"


def _single(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name.lower(), [])
    if len(values) > 1:
        raise ForwardAuthError("repeated_header")
    return values[0] if values else None


def _check_method(method: str | None) -> str:
    if method is None or not _METHOD.fullmatch(method):
        raise ForwardAuthError("bad_method")
    return method


def _check_host(host: str | None) -> str:
    if host is None or not _HOST.fullmatch(host) or ".." in host:
        raise ForwardAuthError("bad_host")
    name, colon, port = host.lower().partition(":")
    # "app.example.com." is the same host as "app.example.com": rules must not be escaped by the dot.
    return name.removesuffix(".") + colon + port


def _split_target(target: str) -> tuple[str, str]:
    if not target.startswith("/") or len(target) > MAX_URI or "#" in target:
        raise ForwardAuthError("bad_uri")
    raw_path, _, query = target.partition("?")
    try:
        return normalize_request_path(raw_path), query
    except PathError as exc:
        raise ForwardAuthError("bad_uri") from exc


def original_request(
    headers: Mapping[str, list[str]], *, envoy_path: str | None, method: str, host: str | None
) -> OriginalRequest:
    """Rebuild the judged request; ``headers`` maps lower-case names to all their values."""
    original_url = _single(headers, "x-original-url")
    forwarded_uri = _single(headers, "x-forwarded-uri")
    if envoy_path is not None and (original_url is not None or forwarded_uri is not None):
        # Envoy names the judged path itself; a second opinion in headers could only come from the client.
        raise ForwardAuthError("ambiguous")
    if original_url is not None and forwarded_uri is not None:
        raise ForwardAuthError("ambiguous")  # two conventions at once is not a proxy we know
    if original_url is not None:
        if len(original_url) > MAX_URI:
            raise ForwardAuthError("bad_uri")
        try:
            parts = urlsplit(original_url)
        except ValueError as exc:
            raise ForwardAuthError("bad_uri") from exc
        if parts.scheme not in ("http", "https") or parts.fragment or "@" in parts.netloc:
            raise ForwardAuthError("bad_uri")
        path, query = _split_target((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        return OriginalRequest(
            mode="nginx",
            method=_check_method(_single(headers, "x-original-method")),
            scheme=parts.scheme,
            host=_check_host(parts.netloc),
            path=path,
            query=query,
        )
    if forwarded_uri is not None:
        proto = _single(headers, "x-forwarded-proto")
        if proto not in ("http", "https"):
            raise ForwardAuthError("bad_proto")
        path, query = _split_target(forwarded_uri)
        return OriginalRequest(
            mode="traefik",
            method=_check_method(_single(headers, "x-forwarded-method")),
            scheme=proto,
            host=_check_host(_single(headers, "x-forwarded-host")),
            path=path,
            query=query,
        )
    if envoy_path is not None:
        proto = _single(headers, "x-forwarded-proto") or "https"
        if proto not in ("http", "https"):
            raise ForwardAuthError("bad_proto")
        path, query = _split_target(envoy_path)
        return OriginalRequest(
            mode="envoy", method=_check_method(method), scheme=proto, host=_check_host(host), path=path, query=query
        )
    raise ForwardAuthError("no_original_request")
