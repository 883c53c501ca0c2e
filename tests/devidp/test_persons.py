"""Every test person's national ID number, checked by implementations independent of the IdP."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from gateway.devidp import TEST_PERSONS, TestPerson


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 1 else 1)
        total += value // 10 + value % 10
    return total % 10 == 0


def swedish_birthdate(pnr: str) -> dt.date:
    assert len(pnr) == 12 and pnr.isdigit(), "12-digit personnummer"
    assert luhn_valid(pnr[2:]), "Luhn check over the last ten digits"
    return dt.date(int(pnr[0:4]), int(pnr[4:6]), int(pnr[6:8]))


def norwegian_birthdate(fnr: str) -> dt.date:
    assert len(fnr) == 11 and fnr.isdigit(), "11-digit fødselsnummer"
    d = [int(c) for c in fnr]
    k1 = 11 - sum(w * x for w, x in zip((3, 7, 6, 1, 8, 9, 4, 5, 2), d[:9], strict=True)) % 11
    k2 = 11 - sum(w * x for w, x in zip((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), d[:10], strict=True)) % 11
    k1, k2 = (0 if k == 11 else k for k in (k1, k2))
    assert k1 != 10 and k2 != 10 and (k1, k2) == (d[9], d[10]), "both mod-11 check digits"
    individual, yy = int(fnr[6:9]), int(fnr[4:6])
    if individual <= 499 or (individual >= 900 and yy >= 40):
        century = 1900
    elif individual >= 500 and yy < 40:
        century = 2000
    elif 500 <= individual <= 749 and yy >= 55:
        century = 1800
    else:
        raise AssertionError("individual number does not fit the year")
    return dt.date(century + yy, int(fnr[2:4]), int(fnr[0:2]))


def danish_birthdate(cpr: str) -> dt.date:
    assert len(cpr) == 10 and cpr.isdigit(), "10-digit CPR"
    yy, seventh = int(cpr[4:6]), int(cpr[6])
    if seventh <= 3 or (seventh in (4, 9) and yy >= 37):
        century = 1900
    elif seventh in (4, 9):
        century = 2000
    else:
        century = 2000 if yy <= 57 else 1800
    return dt.date(century + yy, int(cpr[2:4]), int(cpr[0:2]))


CHECKERS = {"SE": swedish_birthdate, "NO": norwegian_birthdate, "DK": danish_birthdate}


@pytest.mark.parametrize("person", TEST_PERSONS, ids=lambda p: p.id)
def test_national_id_is_valid_and_matches_birthdate(person: TestPerson) -> None:
    birthdate = CHECKERS[person.country](person.ssn)
    assert birthdate.isoformat() == person.birthdate


def test_checkers_reject_bad_numbers() -> None:
    with pytest.raises(AssertionError):
        swedish_birthdate("196802020576")
    with pytest.raises(AssertionError):
        norwegian_birthdate("07025312345")  # BankID's documented login_hint example fails mod-11
    with pytest.raises(ValueError):
        danish_birthdate("3102270087")


def test_coverage_of_countries_and_names() -> None:
    countries = [p.country for p in TEST_PERSONS]
    assert countries.count("SE") >= 2 and countries.count("NO") >= 1 and countries.count("DK") >= 1
    assert "196802020575" in {p.ssn for p in TEST_PERSONS}
    asa = next(p for p in TEST_PERSONS if p.name == "Åsa Öberg")
    assert (asa.given_name, asa.family_name, asa.country) == ("Åsa", "Öberg", "SE")
    for person in TEST_PERSONS:
        assert person.name == f"{person.given_name} {person.family_name}"


def test_ids_and_subjects_are_unique_and_stable() -> None:
    assert len({p.id for p in TEST_PERSONS}) == len(TEST_PERSONS)
    subjects = [p.subject for p in TEST_PERSONS]
    assert len(set(subjects)) == len(subjects)
    assert all(s.startswith("dev-") for s in subjects)
    # Derived from the number only, so a person keeps the same sub across restarts and keys.
    sven = next(p for p in TEST_PERSONS if p.ssn == "196802020575")
    assert sven.subject == "dev-" + hashlib.sha256(b"SE:196802020575").hexdigest()[:32]
