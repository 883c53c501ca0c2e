"""Assurance levels (pure layer, issue 16 item 1): which level a returned ``acr`` stands for, and whether a
session is strong enough for a rule.

``acr_levels`` (per provider) maps an acr value to an integer; a returned acr matches an entry when it is that
value, or that value followed by ``;``-parameters (BankID Norway returns ``urn:bankid:bid;LOA=4`` for
``urn:bankid:bid``). An exact entry wins over a prefix entry. An acr with no entry has no level: it never
satisfies a ``min_level``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from gateway.protocol.claims import Identity
from gateway.protocol.pairwise import person_key


def level_of(acr: str | None, acr_levels: Mapping[str, int]) -> int | None:
    if acr is None or not acr_levels:
        return None
    exact = acr_levels.get(acr)
    if exact is not None:
        return exact
    base = acr.split(";", 1)[0]
    return acr_levels.get(base) if base != acr else None


def with_level(identity: Identity, acr_levels: Mapping[str, int]) -> Identity:
    """The identity with its ``level`` set from its acr (unchanged when the acr has no level)."""
    level = level_of(identity.get("acr"), acr_levels)
    if level is None:
        return identity
    return Identity(values={**identity.values, "level": str(level)})


def session_level(identity: Identity) -> int | None:
    value = identity.get("level")
    return int(value) if value is not None and value.isdigit() else None


def acr_values_for(min_level: int, acr_values: tuple[str, ...], acr_levels: Mapping[str, int]) -> tuple[str, ...]:
    """The provider's acr_values that reach ``min_level``, lowest sufficient level first (what a step-up asks)."""
    reaching = [v for v in acr_values if (level := level_of(v, acr_levels)) is not None and level >= min_level]
    return tuple(sorted(reaching, key=lambda v: level_of(v, acr_levels) or 0))


def too_low_message(min_level: int, identity: Identity) -> str:
    """What the person is told: which level was asked, which came (the acr is printable ASCII, checked)."""
    level = identity.get("level")
    came = f"level {level}" if level is not None else "no known level"
    return (
        f"This service needs a login of assurance level {min_level} or higher; this one came with {came} "
        f"({identity.get('acr') or 'no acr'}). Please log in again with a stronger method."
    )


def person_digest(identity: Identity) -> str:
    """What a step-up keeps of the logged-in person, to compare the new login with: the same national ID, or
    the same provider and subject where there is none."""
    return hashlib.sha256(person_key(identity).encode("utf-8")).hexdigest()
