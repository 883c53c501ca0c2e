"""Repeated header field lines (pure layer): RFC 9110 §5.3.

A field sent on several lines is one comma-separated list, the lines in order: a list-valued header the
gateway interprets is read as all its lines (``X-Forwarded-For``, ``Accept-Language``; ``Cookie`` has its
own reader, protocol/cookie_header.py). A singleton field the gateway decides on must not repeat: two
``Host`` or ``Origin`` lines would let the gateway read one and a proxy or the application the other, so the
request is refused (400) instead of guessing (issue 15, item 3).
"""

from __future__ import annotations

from typing import Protocol

#: Singletons the gateway reads on every request: the target host (RFC 9112 §3.2 requires a 400 for two),
#: what the same-origin check and the page/JSON choice read, and the credential passed to the application.
SINGLETONS = ("Host", "Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Authorization")
#: Singletons believed only from a trusted proxy (forwarded.py): refused when they repeat there.
TRUSTED_SINGLETONS = ("X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id")


class FieldLines(Protocol):
    """What a request's headers offer (multidict's getall)."""

    def getall(self, key: str, default: list[str], /) -> list[str]: ...


def joined(headers: FieldLines, name: str) -> str | None:
    """All lines of a list-valued field as one value (", "-joined, in order); None when it is absent."""
    lines = headers.getall(name, [])
    return ", ".join(lines) if lines else None


def repeated(headers: FieldLines, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` sent on more than one line, or None."""
    for name in names:
        if len(headers.getall(name, [])) > 1:
            return name
    return None
