"""What one route's upstream receives for a session (claims release, issue 17): exactly the claims the route
lists in ``headers``, as headers and in its own assertion, and nothing else.

The legacy route (no ``routes`` in the config) keeps what the gateway always did: its headers, and an
assertion with every verified claim. An explicit route's assertion holds only the claims it lists; its
``sub`` is the provider's subject when the route releases ``ssn`` or ``sub``, else the route's pairwise
subject (when ``pairwise.secret`` is set), so the national ID never reaches it by another name.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.assertion import AssertionSigner, ReleasedClaims, identity_header_values
from gateway.protocol.claims import HeaderEncoding, Identity, encode_header_value
from gateway.protocol.jws import SigningKey
from gateway.protocol.pairwise import PAIRWISE_CLAIM, PREVIOUS_CLAIM, pairwise_subject
from gateway.routes import Route
from gateway.session.store import BoundedCache

#: How the person logged in, in every route's assertion (issue 16): not personal data, and what an
#: application needs to judge the login's strength itself.
ALWAYS_IN_ASSERTION = ("acr", "amr", "auth_time", "level")


class Release:
    """One route's headers and assertion, computed once per session id (every request still loads and
    checks its session before these are used)."""

    def __init__(
        self,
        route: Route,
        *,
        signing_key: SigningKey,
        issuer: str,
        encoding: HeaderEncoding,
        pairwise_secrets: Sequence[bytes] = (),
        cache_size: int = 10_000,
    ) -> None:
        self.route = route
        self.signer = AssertionSigner(
            key=signing_key, issuer=issuer, audience=route.audience, ttl=route.ttl, cache_size=cache_size
        )
        self._encoding: HeaderEncoding = encoding
        self._secrets = tuple(pairwise_secrets)
        self._headers = BoundedCache(cache_size)
        self._released: BoundedCache = BoundedCache(cache_size)

    def pairwise(self, identity: Identity) -> str | None:
        return pairwise_subject(self._secrets[0], self.route.sector, identity) if self._secrets else None

    def released_claims(self, sid: str, identity: Identity) -> ReleasedClaims | None:
        """None for the legacy route (every claim); else what this route lists."""
        if self.route.releases_everything:
            return None
        cached = self._released.get(sid)
        if cached is None:
            cached = self._compute(identity)
            self._released.put(sid, cached)
        return cached  # type: ignore[return-value]

    def _compute(self, identity: Identity) -> ReleasedClaims:
        listed = self.route.released
        claims: dict[str, object] = {}
        for name in (*ALWAYS_IN_ASSERTION, *listed):
            value = identity.get(name)
            if value is not None:
                claims[name] = value
        pairwise = self.pairwise(identity)
        if PAIRWISE_CLAIM in listed and pairwise is not None:
            claims[PAIRWISE_CLAIM] = pairwise
            if len(self._secrets) > 1:
                # During a secret rotation the application can map the pseudonyms it stored to the new one.
                claims[PREVIOUS_CLAIM] = [
                    pairwise_subject(secret, self.route.sector, identity) for secret in self._secrets[1:]
                ]
        gives_account = "ssn" in listed or "sub" in listed
        subject = identity.sub if gives_account or pairwise is None else pairwise
        return ReleasedClaims(subject=subject, claims=claims)

    def header_pairs(self, sid: str, identity: Identity) -> tuple[tuple[str, str], ...]:
        cached = self._headers.get(sid)
        if cached is None:
            released = self.released_claims(sid, identity)
            if released is None:
                cached = identity_header_values(identity, self.route.headers, self._encoding)
            else:
                cached = tuple(
                    (header, encode_header_value(value, self._encoding))
                    for claim, header in self.route.headers.items()
                    if isinstance(value := released.claims.get(claim), str)
                )  # headers: the listed claims only, never the always-in-the-assertion ones unlisted
            self._headers.put(sid, cached)
        return cached  # type: ignore[return-value]

    def assertion(self, sid: str, identity: Identity, *, now: float) -> str:
        return self.signer.assertion_for(sid, identity, now=now, released=self.released_claims(sid, identity))

    def forget(self, sid: str) -> None:
        self.signer.forget(sid)
        self._headers.pop(sid, None)
        self._released.pop(sid, None)
