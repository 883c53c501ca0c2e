"""The poll-based login transaction (pure layer): its type, the invariants every instance holds, and its
compact payload for the sealed transaction cookie. The flow itself (start, poll answers, pacing) is in
``poll.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, get_args

PollKind = Literal["headless", "ciba"]
PollStatus = Literal["pending", "complete", "failed", "expired", "cancelled"]
#: Metric label for one poll: bounded, never derived from input. apply_poll_response never returns
#: "not_due"; it is reserved for the I/O layer's "no poll was sent" answer.
PollResult = Literal[
    "pending",
    "slow_down",
    "success",
    "access_denied",
    "expired_token",
    "invalid_grant",
    "error",
    "rate_limited",
    "server_error",
    "network_error",
    "malformed",
    "expired",
    "not_due",
]
POLL_RESULTS: tuple[str, ...] = get_args(PollResult)


# re.ASCII: without it \d also matches non-ASCII digits. Always used with fullmatch, since "$"
# alone would also accept a trailing newline.
QR_DATA = re.compile(
    r"^bankid\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.\d{1,6}\.[0-9a-f]{64}$", re.ASCII
)
AUTO_START_TOKEN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.ASCII)
HINT_CODE = re.compile(r"^[A-Za-z]{1,40}$", re.ASCII)

KINDS: frozenset[str] = frozenset(get_args(PollKind))
_STATUSES: frozenset[str] = frozenset(get_args(PollStatus))
# Visible ASCII only: the id goes back verbatim in a form body and must survive any logging mistake
# as a single token. 512 is far above real ids (GUIDs, CIBA's >= 128-bit random strings, §7.3).
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,512}")
PROVIDER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")
_MAX_COUNT = 1_000_000_000
_PAYLOAD_VERSION = 1


class PollProtocolError(ValueError):
    """The IdP's answer (or a stored transaction) cannot be used; the login attempt ends.

    ``reason`` is a short bounded word ("idp_unavailable", "malformed_response",
    "malformed_state", an allow-listed OAuth error code, ...) that is safe for metric labels
    and logs: it never echoes the offending input.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PollTransaction:
    """One outstanding poll-based login (a headless order or a CIBA request).

    ``request_id`` is the gateway's secret (protocols.md §2.3: never rendered into HTML/JS);
    it lives only in server-side or sealed session state. ``hint_code``, ``qr_data`` and ``auto_start_token``
    are the latest validated UI material from Idura's ``acr_data``. Instances are checked on
    construction, so every transition in ``poll.py`` yields a consistent state.
    """

    kind: PollKind
    provider: str
    request_id: str
    created: float
    expires_at: float
    interval: float
    next_poll_at: float
    status: PollStatus = "pending"
    reason: str = ""
    hint_code: str | None = None
    qr_data: str | None = None
    auto_start_token: str | None = None
    polls: int = 0
    errors_in_row: int = 0

    def __post_init__(self) -> None:
        problem = invariant_problem(self)
        if problem:
            # Names the field, never the value: the request id is a secret.
            raise ValueError(f"inconsistent PollTransaction: {problem}")

    @property
    def terminal(self) -> bool:
        """True once the transaction is complete, failed, expired or cancelled."""
        return self.status != "pending"

    def to_payload(self) -> dict[str, object]:
        """A compact JSON-able dict for the session store; :meth:`from_payload` reverses it."""
        payload: dict[str, object] = {
            "v": _PAYLOAD_VERSION,
            "k": self.kind,
            "p": self.provider,
            "r": self.request_id,
            "c": self.created,
            "e": self.expires_at,
            "i": self.interval,
            "n": self.next_poll_at,
            "s": self.status,
            "np": self.polls,
            "ne": self.errors_in_row,
        }
        if self.reason:
            payload["x"] = self.reason
        if self.hint_code is not None:
            payload["h"] = self.hint_code
        if self.qr_data is not None:
            payload["q"] = self.qr_data
        if self.auto_start_token is not None:
            payload["a"] = self.auto_start_token
        return payload

    @classmethod
    def from_payload(cls, payload: object) -> PollTransaction:
        """Rebuild a transaction from :meth:`to_payload` output, refusing anything else.

        Types are checked strictly (a bool is not a number, a number is not a string) and the
        result must satisfy every invariant. Raises ``PollProtocolError("malformed_state")``.
        """
        malformed = PollProtocolError("malformed_state")
        if not isinstance(payload, dict) or not _PAYLOAD_REQUIRED <= payload.keys() <= _PAYLOAD_KEYS:
            raise malformed
        version = payload["v"]
        if not is_int(version) or version != _PAYLOAD_VERSION:
            raise malformed
        strings = [payload[key] for key in ("k", "p", "r", "s")]
        numbers = [payload[key] for key in ("c", "e", "i", "n")]
        counters = [payload[key] for key in ("np", "ne")]
        optional = [payload.get(key) for key in ("h", "q", "a")]
        reason = payload.get("x", "")
        if (
            not all(isinstance(value, str) for value in strings)
            or not all(is_number(value) for value in numbers)
            or not all(is_int(value) for value in counters)
            or not all(value is None or isinstance(value, str) for value in optional)
            or not isinstance(reason, str)
        ):
            raise malformed
        try:
            return cls(
                kind=payload["k"],
                provider=payload["p"],
                request_id=payload["r"],
                created=float(payload["c"]),
                expires_at=float(payload["e"]),
                interval=float(payload["i"]),
                next_poll_at=float(payload["n"]),
                status=payload["s"],
                reason=reason,
                hint_code=payload.get("h"),
                qr_data=payload.get("q"),
                auto_start_token=payload.get("a"),
                polls=payload["np"],
                errors_in_row=payload["ne"],
            )
        except (ValueError, OverflowError):
            raise malformed from None


_PAYLOAD_REQUIRED = frozenset({"v", "k", "p", "r", "c", "e", "i", "n", "s", "np", "ne"})
_PAYLOAD_KEYS = _PAYLOAD_REQUIRED | {"x", "h", "q", "a"}


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """The transaction after one poll response, plus the ID token when the IdP issued one.

    ``id_token`` is set only on success; the transaction then stays pending until the caller
    has validated the token (protocols.md §1.3) and called :func:`complete` or :func:`fail`.
    """

    tx: PollTransaction
    id_token: str | None
    result: PollResult


def invariant_problem(tx: PollTransaction) -> str:
    if tx.kind not in KINDS:
        return "kind"
    if tx.status not in _STATUSES:
        return "status"
    if not isinstance(tx.provider, str) or not PROVIDER_NAME.fullmatch(tx.provider):
        return "provider"
    if not isinstance(tx.request_id, str) or not REQUEST_ID.fullmatch(tx.request_id):
        return "request_id"
    times = (tx.created, tx.expires_at, tx.interval, tx.next_poll_at)
    if not all(is_number(value) and math.isfinite(value) for value in times):
        return "times"
    if tx.expires_at < tx.created or tx.interval <= 0:
        return "times"
    if not isinstance(tx.reason, str):
        return "reason"
    if tx.status in ("pending", "complete"):
        if tx.reason:
            return "reason"
    elif not REASON.fullmatch(tx.reason):
        return "reason"
    for value, pattern, name in (
        (tx.hint_code, HINT_CODE, "hint_code"),
        (tx.qr_data, QR_DATA, "qr_data"),
        (tx.auto_start_token, AUTO_START_TOKEN, "auto_start_token"),
    ):
        if value is not None and match_pattern(pattern, value) is None:
            return name
    for count in (tx.polls, tx.errors_in_row):
        if not is_int(count) or not 0 <= count <= _MAX_COUNT:
            return "counters"
    return ""


def is_int(value: object) -> bool:
    # bool is an int subclass, but JSON true is not a number.
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def match_pattern(pattern: re.Pattern[str], value: object) -> str | None:
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    return None
