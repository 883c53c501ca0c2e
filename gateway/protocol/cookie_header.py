"""The Cookie request header, read one way for every decision and for what is forwarded (pure layer).

RFC 6265 §4.2.1 (the grammar a user agent sends, §5.4): ``cookie-pair *( ";" SP cookie-pair )`` with
``cookie-pair = token "=" cookie-value``. Every Cookie field line of a request is read: HTTP/2 may send one
line per cookie (RFC 9113 §8.2.3) and some HTTP/1.1 clients send two lines.

Two readings of each ``;``-separated piece are kept. The *loose* name (what precedes the first ``=``, with
whitespace stripped) is what any lenient parser, the application's included, could take the piece to be; it
decides which pieces are stripped before forwarding and how often a name occurs. The *exact* value is set
only when the piece is a cookie-pair exactly as the grammar has it; only such a value is ever the gateway's
cookie. A gateway cookie name that occurs more than once is ambiguous, even with identical values: the
request carries two credentials and neither may be picked (issue 15, item 2).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

# RFC 9110 §5.6.2 token; RFC 6265 §4.1.1 cookie-octet (no CTLs, whitespace, DQUOTE, comma, semicolon, backslash).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OCTETS = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
_VALUE = re.compile(f'{_OCTETS}|"{_OCTETS}"')
_WHITESPACE = " \t"

Presence = Literal["absent", "one", "ambiguous"]


@dataclass(frozen=True, slots=True)
class CookiePair:
    text: str  # the piece as sent, without its separator and surrounding whitespace
    name: str  # loose: what precedes the first "=" (the whole piece without one), whitespace stripped
    value: str | None  # the cookie-value when the piece is an exact cookie-pair (quotes kept), else None


@dataclass(frozen=True, slots=True)
class CookieLookup:
    """One gateway cookie in one request: absent, exactly one exact value, or ambiguous."""

    presence: Presence
    value: str | None = None  # set only for presence "one"

    @property
    def ambiguous(self) -> bool:
        return self.presence == "ambiguous"


ABSENT = CookieLookup("absent")
AMBIGUOUS = CookieLookup("ambiguous")


def _pair(piece: str, *, first: bool) -> CookiePair | None:
    text = piece.strip(_WHITESPACE)
    if not text:
        return None  # ";;" or a trailing ";": nothing there
    name, eq, value = text.partition("=")
    # Exact: the first piece of a line starts at once (the HTTP parser strips the field's own OWS), every
    # later one after exactly one SP; nothing trails; the name is a token and "=" follows it directly.
    spaced = piece == text if first else piece == " " + text
    exact = spaced and bool(eq) and _TOKEN.fullmatch(name) is not None and _VALUE.fullmatch(value) is not None
    return CookiePair(text=text, name=name.strip(_WHITESPACE), value=value if exact else None)


@dataclass(frozen=True, slots=True)
class CookieHeader:
    pairs: tuple[CookiePair, ...]

    def lookup(self, name: str) -> CookieLookup:
        """``name`` (case-sensitive, RFC 6265 §5.3) in this request. Every piece whose loose name is
        ``name`` counts, exact or not; a sole piece that is not an exact pair is not the gateway's cookie."""
        found = [p for p in self.pairs if p.name == name]
        if len(found) > 1:
            return AMBIGUOUS
        if not found or found[0].value is None:
            return ABSENT
        return CookieLookup("one", found[0].value)

    def values(self, name: str) -> tuple[str, ...]:
        """Every exact value of ``name``: what a browser holding duplicates holds (to end them all)."""
        return tuple(p.value for p in self.pairs if p.name == name and p.value is not None)

    def without(self, drop: Collection[str]) -> str | None:
        """One Cookie line for the next hop: every piece whose loose name, lower-cased, is in ``drop``
        removed (duplicates and malformed pieces included); every other piece passes as sent, in order.
        None when nothing is left."""
        kept = [p.text for p in self.pairs if p.name.lower() not in drop]
        return "; ".join(kept) or None


def parse_cookie_lines(lines: Iterable[str]) -> CookieHeader:
    """Every Cookie field line of a request, in order (RFC 9113 §8.2.3: lines join with "; ")."""
    pairs: list[CookiePair] = []
    for line in lines:
        for index, piece in enumerate(line.split(";")):
            pair = _pair(piece, first=index == 0)
            if pair is not None:
                pairs.append(pair)
    return CookieHeader(tuple(pairs))
