"""JSON parsing for untrusted input (pure layer): no NaN/Infinity, and deep nesting is an error, not a crash.

Python's json module accepts NaN and Infinity (a token with ``exp: Infinity`` would never expire) and
raises RecursionError, which is not a ValueError, on deeply nested input.
"""

from __future__ import annotations

import json
from typing import Any


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def loads(data: str | bytes | bytearray) -> Any:
    """Parse JSON; every kind of bad input raises ValueError."""
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise ValueError("JSON is not valid UTF-8") from exc
