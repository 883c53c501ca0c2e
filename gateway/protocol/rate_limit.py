"""Rate limits where abuse costs real people something (pure layer: no I/O; the counter is passed in).

Each limit is ``N/window`` over fixed windows: a login start per client address, a headless or CIBA start per
client address, and a CIBA start per national ID number, because each CIBA start pushes a notification to
that person's phone, and without a limit anyone could flood a stranger's phone by posting their number.

The counter is the session store's ``count_hit``: shared by every replica with the Redis store, per process
with the cookie store. Keys are HMACs under a key derived from the session secret, so the store never holds
a national ID number or an address in the clear.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: ``10/1m``: ten per minute. Units as for every duration in the config.
_LIMIT = re.compile(r"^(\d{1,6})/(\d{1,6})(s|m|h)\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600}

#: The limits, by name (the config keys under ``rate_limits`` and the metric's label).
LIMIT_NAMES = ("login_per_client", "poll_start_per_client", "ciba_per_person")


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    window: float

    def __str__(self) -> str:
        return f"{self.count}/{int(self.window)}s"


def parse_limit(value: object) -> Limit | None:
    """``"10/1m"`` -> Limit(10, 60.0); None for anything else (the config reports it)."""
    if not isinstance(value, str):
        return None
    match = _LIMIT.match(value.strip())
    if not match:
        return None
    count, window = int(match.group(1)), int(match.group(2)) * _UNITS[match.group(3)]
    if count < 1 or window < 1:
        return None
    return Limit(count, float(window))


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    #: Whole seconds until the current window ends (for Retry-After); 0 when allowed.
    retry_after: int = 0


CountHit = Callable[[str, float, float], Awaitable[int]]


class RateLimiter:
    """Counts one hit per check; refuses once the window's count is over the limit."""

    def __init__(self, limits: dict[str, Limit], key: bytes, count_hit: CountHit) -> None:
        self._limits = limits
        self._key = key
        self._count_hit = count_hit

    def enabled(self, name: str) -> bool:
        return name in self._limits

    def bucket(self, name: str, subject: str) -> str:
        """The counter's name: the limit and an HMAC of the subject (an address, a national ID number)."""
        digest = hmac.new(self._key, f"{name}\0{subject}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{name}:{digest}"

    async def check(self, name: str, subject: str, now: float) -> Verdict:
        limit = self._limits.get(name)
        if limit is None:
            return Verdict(True)
        count = await self._count_hit(self.bucket(name, subject), limit.window, now)
        if count <= limit.count:
            return Verdict(True)
        window_end = (math.floor(now / limit.window) + 1) * limit.window
        return Verdict(False, retry_after=max(1, math.ceil(window_end - now)))
