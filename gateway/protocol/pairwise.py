"""Pairwise subjects (pure layer): a stable pseudonym of one person per sector (a group of applications).

``pairwise_sub`` = base32 (lower case, no padding; 52 characters) of HMAC-SHA-256 under ``pairwise.secret`` over
the sector and the person: the national ID where the provider gave one, so the same person gets the same
value through any provider (Swedish BankID via Idura or via Freja), else the provider's name and ``sub``.
The inputs are length-prefixed, so no sector/person pair can be read as another.

A new secret gives every person new pseudonyms: rotation is a migration, not a key rollover. During one,
``pairwise.previous_secrets`` yield the old values too (``pairwise_sub_previous`` in the assertion), so an
application can map its stored pseudonyms to the new ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from gateway.protocol.claims import Identity

#: Canonical claims a route can release besides the provider's (CANONICAL_CLAIMS): derived per route.
PAIRWISE_CLAIM = "pairwise_sub"
PREVIOUS_CLAIM = "pairwise_sub_previous"
MIN_SECRET_BYTES = 32


def _field(value: str) -> bytes:
    data = value.encode("utf-8")
    return len(data).to_bytes(4, "big") + data


def person_key(identity: Identity) -> str:
    """What the pseudonym is of: the national ID, else the account at its provider."""
    national_id = identity.get("ssn")
    if national_id:
        return "nid:" + national_id
    return "sub:" + identity.idp + "\x00" + identity.sub


def pairwise_subject(secret: bytes, sector: str, identity: Identity) -> str:
    mac = hmac.new(secret, b"eid-gateway pairwise v1" + _field(sector) + _field(person_key(identity)), hashlib.sha256)
    return base64.b32encode(mac.digest()).decode("ascii").rstrip("=").lower()
