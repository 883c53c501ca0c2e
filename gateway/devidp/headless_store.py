"""Headless (Swedish BankID) orders and the queue of injected poll faults, kept in memory.

An order moves through BankID's hintCodes: ``outstandingTransaction`` (not scanned) → ``started``
(scanned, or opened with the autostart token) → ``userSign`` (a person was chosen; reported by one
poll) → approved (the next poll collects the token). The user may decline until it is approved.
"""

from __future__ import annotations

import secrets
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.devidp.store import StoreFullError

SEBANKID_ACR = "urn:grn:authn:se:bankid"
SEBANKID_ACR_VALUES = (SEBANKID_ACR, f"{SEBANKID_ACR}:same-device", f"{SEBANKID_ACR}:another-device:qr")

OUTSTANDING = "outstandingTransaction"
STARTED = "started"
USER_SIGN = "userSign"

#: An expired order is remembered this long, so that a poll can be told ``expired_token``.
EXPIRED_GRACE = 600.0
MAX_ORDERS = 1000

#: Faults that replace the response of a poll; the token faults only apply to a token response.
TOKEN_FAULTS = ("bad_id_token", "wrong_audience")
FAULT_KINDS = ("slow_down", "http_429", "http_500", "malformed_json", *TOKEN_FAULTS, "expired_token", "invalid_grant")
MAX_QUEUED_FAULTS = 1000


class OrderStateError(ValueError):
    """The simulated app tried something the order's current state does not allow."""


@dataclass(slots=True)
class HeadlessOrder:
    req_id: str  # headless_req_id: known to the client only
    order_id: str  # what the simulated app calls the order; never shown to the client
    client_id: str
    acr: str
    end_user_ip: str
    qr_start_token: str
    qr_start_secret: str  # never leaves the IdP
    auto_start_token: str
    created_at: float
    expires_at: float
    hint: str = OUTSTANDING
    person_id: str | None = None
    identified_at: float | None = None
    approved: bool = False
    declined: bool = False
    last_poll: float | None = None

    @classmethod
    def new(cls, *, client_id: str, acr: str, end_user_ip: str, now: float, expires_in: int) -> HeadlessOrder:
        return cls(
            req_id=str(uuid.uuid4()),
            order_id=secrets.token_urlsafe(24),
            client_id=client_id,
            acr=acr,
            end_user_ip=end_user_ip,
            qr_start_token=str(uuid.uuid4()),
            qr_start_secret=str(uuid.uuid4()),
            auto_start_token=str(uuid.uuid4()),
            created_at=now,
            expires_at=now + expires_in,
        )

    def seconds_since_start(self, now: float) -> int:
        return max(0, int(now - self.created_at))

    @property
    def finished(self) -> bool:
        """The user is done with the app: identified or declined."""
        return self.declined or self.person_id is not None

    def scan(self) -> None:
        """The app opened the order (QR scan or autostart); opening it again changes nothing."""
        if self.finished:
            raise OrderStateError("this order was already answered in the app")
        self.hint = STARTED

    def identify(self, person_id: str, now: float) -> None:
        if self.finished:
            raise OrderStateError("this order was already answered in the app")
        if self.hint != STARTED:
            raise OrderStateError("the order must be opened in the app first")
        self.hint = USER_SIGN
        self.person_id = person_id
        self.identified_at = now

    def decline(self) -> None:
        if self.approved or self.declined:
            raise OrderStateError("this order was already answered in the app")
        self.declined = True


class HeadlessStore:
    """Orders by headless_req_id, with lookups for the simulated app."""

    def __init__(self, clock: Callable[[], float], *, max_items: int = MAX_ORDERS) -> None:
        self._clock = clock
        self._max_items = max_items
        self._by_req: dict[str, HeadlessOrder] = {}
        self._by_order: dict[str, HeadlessOrder] = {}
        self._by_auto_start: dict[str, HeadlessOrder] = {}
        self._by_qr_start: dict[str, HeadlessOrder] = {}

    def add(self, order: HeadlessOrder) -> None:
        if len(self._by_req) >= self._max_items:
            self._sweep()
            if len(self._by_req) >= self._max_items:
                raise StoreFullError("too many headless orders")
        self._by_req[order.req_id] = order
        self._by_order[order.order_id] = order
        self._by_auto_start[order.auto_start_token] = order
        self._by_qr_start[order.qr_start_token] = order

    def get(self, req_id: str) -> HeadlessOrder | None:
        """The order, also when it has expired but is still remembered (for ``expired_token``)."""
        self._sweep()
        return self._by_req.get(req_id)

    def live_by_order_id(self, order_id: str) -> HeadlessOrder | None:
        return self._live(self._by_order.get(order_id))

    def live_by_auto_start_token(self, token: str) -> HeadlessOrder | None:
        return self._live(self._by_auto_start.get(token))

    def live_by_qr_start_token(self, token: str) -> HeadlessOrder | None:
        return self._live(self._by_qr_start.get(token))

    def open_orders(self) -> list[HeadlessOrder]:
        """Unexpired orders the user has not answered yet, oldest first."""
        now = self._clock()
        return sorted(
            (o for o in self._by_req.values() if o.expires_at > now and not o.finished),
            key=lambda o: o.created_at,
        )

    def remove(self, order: HeadlessOrder) -> None:
        self._by_req.pop(order.req_id, None)
        self._by_order.pop(order.order_id, None)
        self._by_auto_start.pop(order.auto_start_token, None)
        self._by_qr_start.pop(order.qr_start_token, None)

    def __len__(self) -> int:
        self._sweep()
        return len(self._by_req)

    def _live(self, order: HeadlessOrder | None) -> HeadlessOrder | None:
        return order if order is not None and order.expires_at > self._clock() else None

    def _sweep(self) -> None:
        now = self._clock()
        for order in [o for o in self._by_req.values() if o.expires_at + EXPIRED_GRACE <= now]:
            self.remove(order)


class FaultQueue:
    """Faults for the next headless polls, first in first out, whatever order they poll.

    A token fault at the head waits for the next poll that would have issued a token; the polls
    before it are answered normally.
    """

    def __init__(self) -> None:
        self._queue: deque[str] = deque()

    def add(self, kind: str, count: int) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault must be one of {', '.join(FAULT_KINDS)}")
        if len(self._queue) + count > MAX_QUEUED_FAULTS:
            raise ValueError(f"at most {MAX_QUEUED_FAULTS} faults can be queued")
        self._queue.extend([kind] * count)

    def clear(self) -> None:
        self._queue.clear()

    def take(self, *, token_response: bool) -> str | None:
        if not self._queue or (self._queue[0] in TOKEN_FAULTS and not token_response):
            return None
        return self._queue.popleft()

    def snapshot(self) -> list[str]:
        return list(self._queue)
