"""What the upstream receives (pure layer): the identity headers, the signed assertion, and the list of
client headers that must never pass because they name the identity or the client's route.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.protocol.claims import HeaderEncoding, Identity, encode_header_value
from gateway.protocol.jws import SigningKey, sign

#: Headers about the client's path and origin that only the gateway may write (attacks.md T07, T08).
ROUTING_HEADERS = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-uri",
        "x-forwarded-method",
        "x-forwarded-server",
        "x-forwarded-ssl",
        "x-original-url",
        "x-original-uri",
        "x-original-method",
        "x-rewrite-url",
        "x-real-ip",
        "x-client-ip",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        # Client-address headers that frameworks and CDNs read (Rails: Client-IP; Cloudflare, Akamai, Fastly).
        "true-client-ip",
        "client-ip",
        "cf-connecting-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "x-originating-ip",
        "x-remote-ip",
        "x-remote-addr",
    }
)


def normalize_header_name(name: str) -> str:
    """WSGI/CGI map '_' and '-' alike, so a filter must too (attacks.md T10)."""
    return name.lower().replace("_", "-")


def protected_names(identity_headers: Iterable[str], assertion_header: str) -> frozenset[str]:
    return frozenset(normalize_header_name(h) for h in (*identity_headers, assertion_header)) | ROUTING_HEADERS


def identity_header_values(
    identity: Identity, headers: Mapping[str, str], encoding: HeaderEncoding
) -> tuple[tuple[str, str], ...]:
    """(header, ASCII value) for every mapped canonical claim the identity has."""
    out = []
    for canonical, header in headers.items():
        value = identity.get(canonical)
        if value is not None:
            out.append((header, encode_header_value(value, encoding)))
    return tuple(out)


def jwt_value(name: str, value: object) -> object:
    """The identity keeps every value as text; in the JWT auth_time is a NumericDate, level a number and amr
    a list (RFC 8176)."""
    if isinstance(value, str):
        if name in ("auth_time", "level") and value.isdigit():
            return int(value)
        if name == "amr":
            return value.split(" ")
    return value


@dataclass(frozen=True, slots=True)
class ReleasedClaims:
    """What a route may see of a session: the assertion's ``sub`` and its other claims."""

    subject: str
    claims: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class SignedAssertion:
    token: str
    expires: float


class AssertionSigner:
    """Signs the upstream assertion; reuses one per session while more than half its lifetime remains.

    The cache is keyed by session id, so an assertion is never shared between sessions, and a
    reused assertion still carries its original exp. One signer per route: each has its own audience.
    """

    def __init__(self, *, key: SigningKey, issuer: str, audience: str, ttl: float, cache_size: int = 10000) -> None:
        self.key, self.issuer, self.audience, self.ttl = key, issuer, audience, ttl
        self._cache: OrderedDict[str, SignedAssertion] = OrderedDict()
        self._cache_size = cache_size

    def assertion_for(
        self, sid: str, identity: Identity, *, now: float, released: ReleasedClaims | None = None
    ) -> str:
        """``released``: the claims a route releases (None: every verified claim, the legacy route)."""
        cached = self._cache.get(sid)
        if cached is not None and cached.expires - now > self.ttl / 2:
            return cached.token
        iat = int(now)
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": identity.sub if released is None else released.subject,
            "iat": iat,
            "nbf": iat,
            "exp": iat + int(self.ttl),
            "jti": str(uuid.uuid4()),
        }
        for name, value in (identity.to_json() if released is None else released.claims).items():
            if name not in claims:
                claims[name] = jwt_value(name, value)
        signed = SignedAssertion(token=sign(claims, self.key), expires=iat + int(self.ttl))
        self._cache[sid] = signed
        self._cache.move_to_end(sid)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return signed.token

    def forget(self, sid: str) -> None:
        self._cache.pop(sid, None)
