"""ID token claims and the PKCE check (pure: the time arrives as ``now``)."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from gateway.devidp.headless_store import SEBANKID_ACR, HeadlessOrder
from gateway.devidp.persons import TestPerson
from gateway.devidp.state import ID_TOKEN_TTL, IssuedCode
from gateway.protocol.jws import b64url_encode

#: Idura's headless tokens live 20 minutes (exp - iat = 1200 in the sample).
HEADLESS_ID_TOKEN_TTL = 1200
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}\Z")


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6 with S256, the only method this IdP accepts."""
    if not _VERIFIER.match(verifier):
        return False
    computed = b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())
    return hmac.compare_digest(computed, challenge)


def build_id_token_claims(
    issued: IssuedCode, person: TestPerson, *, issuer: str, access_token: str, now: float
) -> dict[str, Any]:
    issued_at = int(now)
    return {
        "iss": issuer,
        "sub": person.subject,
        "aud": issued.client_id,
        "azp": issued.client_id,
        "exp": issued_at + ID_TOKEN_TTL,
        "iat": issued_at,
        "auth_time": issued.auth_time,
        "nonce": issued.nonce,
        "acr": issued.acr,
        "amr": ["dev"],
        # Left half of SHA-256 of the access token (OIDC Core §3.1.3.6), for RPs that check it.
        "at_hash": b64url_encode(hashlib.sha256(access_token.encode("ascii")).digest()[:16]),
        **person.claims(),
    }


def sebankid_subject(person: TestPerson) -> uuid.UUID:
    """The person's stable pseudonym, shaped like Idura's (a GUID); the same across restarts."""
    digest = hashlib.sha256(f"sebankid:{person.ssn}".encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def build_sebankid_id_token_claims(
    order: HeadlessOrder, person: TestPerson, *, issuer: str, now: float, audience: str | None = None
) -> dict[str, Any]:
    """Claims like Idura's Swedish BankID headless token (protocols.md §1.3): no nonce, no acr/amr."""
    issued_at = int(now)
    subject = sebankid_subject(person)
    identified = datetime.fromtimestamp(order.identified_at or now, UTC)
    return {
        "iss": issuer,
        "aud": audience if audience is not None else order.client_id,
        "identityscheme": "sebankid",
        "authenticationtype": SEBANKID_ACR,
        "authenticationmethod": "urn:oasis:names:tc:SAML:2.0:ac:classes:SoftwarePKI",
        "authenticationinstant": identified.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "nameidentifier": subject.hex,
        "sub": "{" + str(subject) + "}",
        "sessionindex": str(uuid.uuid4()),
        "ssn": person.ssn,
        "name": person.name,
        "givenname": person.given_name,
        "given_name": person.given_name,
        "surname": person.family_name,
        "family_name": person.family_name,
        "ipaddress": order.end_user_ip,
        "country": person.country,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + HEADLESS_ID_TOKEN_TTL,
    }
