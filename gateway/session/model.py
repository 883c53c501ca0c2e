"""Session and pending-login records (pure layer) and their conversion to and from sealed payloads."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from gateway.protocol.claims import Identity

#: At most this many logins may be in flight per browser (tabs); the oldest is evicted (attacks.md T22).
MAX_PENDING_LOGINS = 3


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    identity: Identity
    created: float
    last_seen: float
    expires: float  # absolute end: created + lifetime
    idle_timeout: float
    # The provider's own session id (ID token "sid"), for OpenID back-channel logout.
    provider_sid: str | None = None
    # Refresh grant, for providers that issue one: refreshed from ``refresh_at`` on.
    refresh_token: str | None = None
    refresh_at: float | None = None
    # The store's handle for this session (the Redis store's cookie value); never serialised.
    handle: str | None = None

    @classmethod
    def new(
        cls,
        identity: Identity,
        *,
        now: float,
        lifetime: float,
        idle_timeout: float,
        provider_sid: str | None = None,
        refresh_token: str | None = None,
        refresh_at: float | None = None,
    ) -> Session:
        return cls(
            sid=secrets.token_urlsafe(16),
            identity=identity,
            created=now,
            last_seen=now,
            expires=now + lifetime,
            idle_timeout=idle_timeout,
            provider_sid=provider_sid,
            refresh_token=refresh_token if refresh_at is not None else None,
            refresh_at=refresh_at if refresh_token is not None else None,
        )

    def is_valid(self, now: float) -> bool:
        return now < self.expires and now < self.last_seen + self.idle_timeout

    def needs_refresh(self, now: float) -> bool:
        """Re-seal only once a minute at most (or a tenth of the idle window), not on every request."""
        return now - self.last_seen > min(60.0, self.idle_timeout / 10)

    def touched(self, now: float) -> Session:
        return replace(self, last_seen=now)

    def refresh_due(self, now: float) -> bool:
        return self.refresh_at is not None and now >= self.refresh_at

    def refreshed(self, *, refresh_token: str, refresh_at: float | None) -> Session:
        """After a refresh grant; without a new expiry there is nothing left to refresh for."""
        if refresh_at is None:
            return replace(self, refresh_token=None, refresh_at=None)
        return replace(self, refresh_token=refresh_token, refresh_at=refresh_at)

    def cookie_expiry(self) -> float:
        return min(self.expires, self.last_seen + self.idle_timeout)

    def to_payload(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "id": self.identity.to_json(),
            "c": self.created,
            "l": self.last_seen,
            "x": self.expires,
            "i": self.idle_timeout,
            "exp": self.cookie_expiry(),
            **({"os": self.provider_sid} if self.provider_sid is not None else {}),
            **(
                {"rt": self.refresh_token, "ra": self.refresh_at}
                if self.refresh_token is not None and self.refresh_at is not None
                else {}
            ),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Session:
        """Rebuild from a payload we sealed ourselves; still type-checked so a bug cannot fail open."""
        identity = payload.get("id")
        numbers = [payload.get(k) for k in ("c", "l", "x", "i")]
        if (
            not isinstance(payload.get("sid"), str)
            or not isinstance(identity, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in identity.items())
            or not isinstance(identity.get("sub"), str)
            or not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers)
        ):
            raise ValueError("malformed session payload")
        provider_sid, refresh_token, refresh_at = payload.get("os"), payload.get("rt"), payload.get("ra")
        if (
            (provider_sid is not None and not isinstance(provider_sid, str))
            or (refresh_token is None) != (refresh_at is None)
            or (refresh_token is not None and not isinstance(refresh_token, str))
            or (refresh_at is not None and (isinstance(refresh_at, bool) or not isinstance(refresh_at, (int, float))))
        ):
            raise ValueError("malformed session payload")
        c, last, x, i = (float(n) for n in numbers)  # type: ignore[arg-type]
        return cls(
            sid=payload["sid"],
            identity=Identity(values=MappingProxyType(dict(identity))),
            created=c,
            last_seen=last,
            expires=x,
            idle_timeout=i,
            provider_sid=provider_sid,
            refresh_token=refresh_token,
            refresh_at=float(refresh_at) if refresh_at is not None else None,
        )


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the callback needs to finish one login; lives only in the sealed login cookie."""

    state: str
    nonce: str
    code_verifier: str
    provider: str
    return_to: str
    created: float
    #: The acr_values this login asked for when the application chose them (/_auth/login?acr_values=...):
    #: the ID token must match these, not merely the provider's configured ones.
    acr_values: tuple[str, ...] | None = None
    #: A step-up (issue 16 item 2): the SHA-256 of the logged-in person's key (pairwise.person_key); the new
    #: login must be the same person, or it is refused and the old session kept.
    step_up: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "s": self.state,
            "n": self.nonce,
            "v": self.code_verifier,
            "p": self.provider,
            "r": self.return_to,
            "t": self.created,
            **({"a": list(self.acr_values)} if self.acr_values is not None else {}),
            **({"u": self.step_up} if self.step_up is not None else {}),
        }

    @classmethod
    def from_payload(cls, item: Any) -> PendingLogin | None:
        if not isinstance(item, dict):
            return None
        values = [item.get(k) for k in ("s", "n", "v", "p", "r")]
        created = item.get("t")
        if (
            not all(isinstance(v, str) for v in values)
            or not isinstance(created, (int, float))
            or isinstance(created, bool)
        ):
            return None
        acr_values = item.get("a")
        if acr_values is not None and (
            not isinstance(acr_values, list) or not acr_values or not all(isinstance(a, str) for a in acr_values)
        ):
            return None
        step_up = item.get("u")
        if step_up is not None and not isinstance(step_up, str):
            return None
        s, n, v, p, r = values
        return cls(
            state=s,  # type: ignore[arg-type]
            nonce=n,  # type: ignore[arg-type]
            code_verifier=v,  # type: ignore[arg-type]
            provider=p,  # type: ignore[arg-type]
            return_to=r,  # type: ignore[arg-type]
            created=float(created),
            acr_values=tuple(acr_values) if acr_values is not None else None,
            step_up=step_up,
        )


def add_pending(pending: list[PendingLogin], login: PendingLogin) -> list[PendingLogin]:
    return [*pending, login][-MAX_PENDING_LOGINS:]
