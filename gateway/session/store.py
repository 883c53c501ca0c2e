"""Where sessions live: the seam between the handlers and a session store.

Two stores keep one contract (tests/store/ runs the same suite against both):

* ``CookieStore`` (default): the whole session, sealed, is the cookie. Nothing is shared between
  processes, so logout, "log out everywhere" and back-channel logout are remembered by the process that
  received them only.
* ``RedisStore`` (``session.store: redis://...``, in ``redis_store.py``): the cookie holds a random id and a
  per-session key; every replica sees every logout at once.

Every store also keeps single-use markers (OIDC states, finished headless transactions, logout token
``jti``s) and short locks (one refresh per session), so that a step can be served by any replica.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import GatewayError
from gateway.protocol.pairwise import person_key
from gateway.session.codec import Keyring, SealError
from gateway.session.model import Session

SESSION_PURPOSE = "session"


class StoreUnavailableError(GatewayError):
    """The shared store did not answer: fail closed (never treat it as "no session" or as "logged in")."""

    status = 503
    code = "session_store_unavailable"
    public_message = "Sign-in is unavailable for a moment. Please try again shortly."


class UnconfirmedWriteError(StoreUnavailableError):
    """A write that must survive a failover of the store (a logout, a spent single-use marker) was not
    acknowledged by a replica in time, so a failover could undo it: it is not confirmed. A 503 like any
    store failure ("try again"), never an answer that says it happened."""


@dataclass(frozen=True, slots=True)
class Loaded:
    session: Session | None
    rejection: str | None = None  # why a presented cookie was refused (a metric label)
    reissue: bool = False  # the cookie itself must be rewritten (sliding expiry of the cookie store)


NO_COOKIE = Loaded(None)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What session administration shows of one session (never the identity itself)."""

    reference: str  # opaque: ends this session (end_by_reference), cannot be made into a cookie
    provider: str
    acr: str | None
    created: float
    last_seen: float
    expires: float


class NotListableError(GatewayError):
    """The cookie store keeps no sessions on the server: they cannot be listed or ended one by one."""

    status = 409
    code = "not_listable"
    public_message = "The cookie session store keeps no sessions on the server; revoke by person instead."


class SessionStore(Protocol):
    name: str

    async def load(self, cookie: str, now: float) -> Loaded: ...

    async def save(self, session: Session, now: float) -> str:
        """Create or overwrite the session; returns the cookie value to set."""
        ...

    def cookie_max_age(self, session: Session, now: float) -> int: ...

    async def end(self, session: Session, now: float) -> None: ...

    async def end_for_subject(self, provider: str, sub: str, now: float) -> int:
        """End every session of one person at one provider (log out everywhere, back-channel by sub)."""
        ...

    async def end_for_provider_session(self, provider: str, provider_sid: str, now: float) -> int:
        """End the sessions made from one provider session (back-channel logout by sid)."""
        ...

    async def sessions_of_person(self, person: str, now: float) -> list[SessionInfo]:
        """The live sessions of one person (protocol/pairwise.person_key); NotListableError if not kept."""
        ...

    async def end_for_person(self, person: str, now: float) -> int:
        """End every session of one person, through any provider (session administration)."""
        ...

    async def end_by_reference(self, reference: str, now: float) -> int:
        """End the session a SessionInfo.reference names; 0 if it is gone; NotListableError if not kept."""
        ...

    async def is_spent(self, marker: str, now: float) -> bool: ...

    async def spend(self, marker: str, expires: float, now: float) -> bool:
        """Mark a single-use value spent; True only for the first caller, across every replica."""
        ...

    async def lock(self, name: str, ttl: float) -> str | None:
        """A short exclusive lock; returns a token to release it with, or None if someone holds it."""
        ...

    async def unlock(self, name: str, token: str) -> None: ...

    async def count_hit(self, name: str, window: float, now: float) -> int:
        """Count one hit for ``name`` in the current fixed window of ``window`` seconds (``int(now // window)``)
        and return the window's count, this hit included (the rate limiter's counter). A name counted with
        two window lengths is two counters. Shared by every replica with Redis, per process in memory."""
        ...

    async def healthy(self) -> bool: ...

    async def close(self) -> None: ...


class ExpiringSet:
    """Bounded set of one-time values (consumed states, revoked session ids) that forget on expiry."""

    def __init__(self, max_size: int = 100_000) -> None:
        self._items: OrderedDict[str, float] = OrderedDict()
        self._max = max_size

    def add(self, item: str, expires: float) -> None:
        self._items[item] = expires
        self._items.move_to_end(item)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def add_if_absent(self, item: str, expires: float, now: float) -> bool:
        if self.contains(item, now):
            return False
        self.add(item, expires)
        return True

    def contains(self, item: str, now: float) -> bool:
        expires = self._items.get(item)
        return expires is not None and expires > now

    def get(self, item: str, now: float) -> float | None:
        expires = self._items.get(item)
        return expires if expires is not None and expires > now else None

    def discard(self, item: str) -> None:
        self._items.pop(item, None)


class BoundedCache(dict[str, object]):
    """A dict that empties itself when full: cheaper per hit than an LRU, and a miss only costs a recompute."""

    def __init__(self, max_size: int = 10_000) -> None:
        super().__init__()
        self.max_size = max_size

    def put(self, key: str, value: object) -> None:
        if len(self) >= self.max_size:
            self.clear()
        self[key] = value


class CookieStore:
    """The session is the sealed cookie; revocations are remembered in this process only."""

    name = "cookie"

    def __init__(self, keyring: Keyring, *, lifetime: float, clock: Callable[[], float]) -> None:
        self._keyring = keyring
        self._lifetime = lifetime
        self._clock = clock
        self._unsealed = BoundedCache()
        self._revoked = ExpiringSet()
        self._spent = ExpiringSet()
        self._locks = ExpiringSet(10_000)
        # Rate-limit counters of this process: key -> (count, end of its window).
        self._hits: dict[str, tuple[int, float]] = {}
        # "u" + provider + sub and "o" + provider + provider sid -> the moment they were logged out. A
        # session made at or before that moment is refused; a later login (even with the same provider
        # sid, if the provider kept its session) is not.
        self._ended_at: dict[str, float] = {}

    async def load(self, cookie: str, now: float) -> Loaded:
        session = self._unsealed.get(cookie)
        if not isinstance(session, Session):
            try:
                session = Session.from_payload(self._keyring.unseal(cookie, purpose=SESSION_PURPOSE, now=now))
            except SealError as exc:
                return Loaded(None, exc.reason)
            except ValueError:
                return Loaded(None, "malformed")
            self._unsealed.put(cookie, session)
        # Checked on every request, cached or not: the cookie's own expiry is min(absolute, idle).
        if not session.is_valid(now):
            return Loaded(None, "expired")
        if self._revoked.contains(session.sid, now) or self._ended(session):
            return Loaded(None, "logged_out")
        return Loaded(session, reissue=session.needs_refresh(now))

    def _ended(self, session: Session) -> bool:
        if not self._ended_at:  # nobody logged out everywhere or was revoked: nothing to compare (every request)
            return False
        keys = [
            _subject("u", session.identity.idp, session.identity.sub),
            _subject("p", "", person_key(session.identity)),
        ]
        if session.provider_sid is not None:
            keys.append(_subject("o", session.identity.idp, session.provider_sid))
        for key in keys:
            ended_at = self._ended_at.get(key)
            if ended_at is not None and session.created <= ended_at:
                return True
        return False

    def _end_at(self, key: str, now: float) -> None:
        if len(self._ended_at) >= 100_000:
            self._ended_at = {k: t for k, t in self._ended_at.items() if t + self._lifetime > now}
        self._ended_at[key] = now

    async def save(self, session: Session, now: float) -> str:
        return self._keyring.seal(session.touched(now).to_payload(), purpose=SESSION_PURPOSE)

    def cookie_max_age(self, session: Session, now: float) -> int:
        return max(1, int(session.touched(now).cookie_expiry() - now))

    async def end(self, session: Session, now: float) -> None:
        self._revoked.add(session.sid, session.expires)

    async def end_for_subject(self, provider: str, sub: str, now: float) -> int:
        self._end_at(_subject("u", provider, sub), now)
        return 0  # unknown: the sessions are cookies in browsers; they are refused when they come back

    async def end_for_provider_session(self, provider: str, provider_sid: str, now: float) -> int:
        self._end_at(_subject("o", provider, provider_sid), now)
        return 0

    async def sessions_of_person(self, person: str, now: float) -> list[SessionInfo]:
        raise NotListableError("cookie_store")

    async def end_for_person(self, person: str, now: float) -> int:
        # This process refuses the person's sessions made until now when they come back; other replicas don't.
        self._end_at(_subject("p", "", person), now)
        return 0

    async def end_by_reference(self, reference: str, now: float) -> int:
        raise NotListableError("cookie_store")

    async def is_spent(self, marker: str, now: float) -> bool:
        return self._spent.contains(marker, now)

    async def spend(self, marker: str, expires: float, now: float) -> bool:
        return self._spent.add_if_absent(marker, expires, now)

    async def lock(self, name: str, ttl: float) -> str | None:
        now = self._clock()
        return name if self._locks.add_if_absent(name, now + ttl, now) else None

    async def unlock(self, name: str, token: str) -> None:
        self._locks.discard(name)

    async def count_hit(self, name: str, window: float, now: float) -> int:
        index = int(now // window)
        key = f"{window!r}\0{name}\0{index}"
        if key not in self._hits and len(self._hits) >= _MAX_COUNTERS:
            self._hits = {k: v for k, v in self._hits.items() if v[1] > now}
            if len(self._hits) >= _MAX_COUNTERS:  # that many live buckets: start over rather than grow
                self._hits.clear()
        count = self._hits.get(key, (0, 0.0))[0] + 1
        self._hits[key] = (count, (index + 1) * window)
        return count

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None


_MAX_COUNTERS = 100_000


def _subject(kind: str, provider: str, value: str) -> str:
    return f"{kind}\0{provider}\0{value}"
