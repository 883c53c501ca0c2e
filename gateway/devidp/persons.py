"""Fictitious test persons shown on the development IdP's login page.

The national ID numbers are well-formed test numbers (valid check digits, dates consistent with the
birthdates) so that the gateway's number validation is exercised the same way real logins would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: The identity claims put into the ID token and the userinfo response.
PERSON_CLAIMS = ("ssn", "name", "given_name", "family_name", "country", "birthdate")


@dataclass(frozen=True, slots=True)
class TestPerson:
    """One selectable identity; ``id`` is the value the login form posts back."""

    __test__ = False  # not a pytest test class, despite the name

    id: str
    ssn: str
    name: str
    given_name: str
    family_name: str
    country: str
    birthdate: str

    @property
    def subject(self) -> str:
        """Stable ``sub``: the same person always gets the same subject, across restarts."""
        digest = hashlib.sha256(f"{self.country}:{self.ssn}".encode()).hexdigest()
        return f"dev-{digest[:32]}"

    def claims(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in PERSON_CLAIMS}


TEST_PERSONS: tuple[TestPerson, ...] = (
    # Swedish personnummer: YYYYMMDD + 3-digit serial + Luhn digit over the last ten digits.
    TestPerson("se-sven", "196802020575", "Sven Svensson", "Sven", "Svensson", "SE", "1968-02-02"),
    TestPerson("se-asa", "199003152387", "Åsa Öberg", "Åsa", "Öberg", "SE", "1990-03-15"),
    # Norwegian fødselsnummer: DDMMYY + individual number + two mod-11 check digits.
    TestPerson("no-kari", "27034698436", "Kari Nordmann", "Kari", "Nordmann", "NO", "1946-03-27"),
    TestPerson("no-ola", "16084138758", "Ola Nordmann", "Ola", "Nordmann", "NO", "1941-08-16"),
    # Danish CPR: DDMMYY + 4 digits; the century follows from the 7th digit and the year.
    TestPerson("dk-jens", "2101270087", "Jens Hansen", "Jens", "Hansen", "DK", "1927-01-21"),
)


def find_person(person_id: str) -> TestPerson | None:
    return next((p for p in TEST_PERSONS if p.id == person_id), None)
