"""The ``rate_limits`` section: abuse limits on login starts and CIBA pushes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.reader import Problems
from gateway.config.schema import RATE_LIMIT_KEYS
from gateway.protocol.rate_limit import LIMIT_NAMES, Limit, parse_limit

#: On by default: a CIBA start pushes a notification to the phone of the person whose number was posted,
#: and login starts cost the provider (and, for BankID, the person) something. "off" turns one off.
DEFAULT_RATE_LIMITS = {
    "login_per_client": Limit(120, 60.0),
    "poll_start_per_client": Limit(30, 60.0),
    "ciba_per_person": Limit(5, 600.0),
}


def load_rate_limits(raw: Mapping[str, Any] | None, problems: Problems) -> dict[str, Limit]:
    limits = dict(DEFAULT_RATE_LIMITS)
    if raw is None:
        return limits
    problems.unknown_keys("rate_limits.", raw, RATE_LIMIT_KEYS)
    for name in LIMIT_NAMES:
        if name not in raw:
            continue
        value = raw[name]
        if value == "off" or value is False:  # YAML 1.1 reads a bare `off` as false
            del limits[name]
            continue
        limit = parse_limit(value)
        if limit is None:
            problems.add(f"rate_limits.{name}", "must be N/window such as 10/1m, 5/10m or 100/1h, or off")
        else:
            limits[name] = limit
    return limits
