"""National identity numbers of SE, NO, DK, FI and IS (issue 16 item 9): the published examples and the ways
each scheme's check fails. The examples come from the registries' documentation, not from our code."""

from __future__ import annotations

import pytest

from gateway.protocol.national_id import (
    is_danish_cpr,
    is_finnish_henkilotunnus,
    is_icelandic_kennitala,
    is_national_id,
    is_norwegian_fodselsnummer,
    is_swedish_personnummer,
)


@pytest.mark.parametrize("value", [
    "131052-308T",   # DVV's example (1900s, hyphen)
    "131052A308T",   # the same person born in 2052: sign A
    "010101+123N",   # 1800s
    *[f"010101{sign}123N" for sign in "-YXWVU"],   # the 2023 century signs for the 1900s
    *[f"010101{sign}123N" for sign in "ABCDEF"],   # ... and for the 2000s
    "290200A1239",   # 29 February 2000
    "010594Y9032",   # DVV's example for the new signs, a temporary (900-999) individual number
])
def test_finnish_henkilotunnus_accepted(value: str) -> None:
    assert is_finnish_henkilotunnus(value)
    assert is_national_id(value, "FI")


@pytest.mark.parametrize("value", [
    "131052-308U",   # check character off
    "131052-308t",   # lower case: not the registry's form
    "131052308T",    # century sign missing
    "131052 308T",
    "131052Z308T",   # Z is no century sign
    "131052G308T",   # G is none either (the signs are + - A-F U-Y)
    "290200-1237",   # 29 February 1900 does not exist
    "320152-308T",   # day 32
    "010101-001X",   # individual numbers 000 and 001 are never issued
    "131052-308T ",
    "\uff11\uff13\uff11\uff10\uff15\uff12-308T",   # full-width digits
    "",
])
def test_finnish_henkilotunnus_refused(value: str) -> None:
    assert not is_finnish_henkilotunnus(value)
    assert not is_national_id(value, "FI")


@pytest.mark.parametrize("value", ["1201743399", "0101302989", "2301003300"])
def test_icelandic_kennitala_accepted(value: str) -> None:
    assert is_icelandic_kennitala(value), value


@pytest.mark.parametrize("value", [
    "1201743389",    # check digit off
    "1201743397",    # century digit 7 does not exist
    "5201743399",    # day 52: a company's kennitala (day + 40), not a person
    "120174-3399",   # the hyphen is print formatting, not the number
    "3002743399",    # 30 February
])
def test_icelandic_kennitala_refused(value: str) -> None:
    assert not is_icelandic_kennitala(value)


def test_each_country_holds_the_number_to_its_own_scheme() -> None:
    se, no, dk, fi, is_ = "196802020575", "27034698436", "2101270087", "131052-308T", "1201743399"
    assert is_swedish_personnummer(se) and is_norwegian_fodselsnummer(no) and is_danish_cpr(dk)
    table = {"SE": se, "NO": no, "DK": dk, "FI": fi, "IS": is_}
    for country, own in table.items():
        for other_country, other in table.items():
            if other == own:
                continue
            if {country, other_country} == {"DK", "IS"} and is_danish_cpr(other) and is_icelandic_kennitala(other):
                continue
            assert not is_national_id(other, country), (other, country)
        assert is_national_id(own, country)
    # without a country (or with a nationality outside the five), the form decides
    for value in table.values():
        assert is_national_id(value) and is_national_id(value, "GB")


@pytest.mark.parametrize("value", [None, 196802020575, ["196802020575"], b"196802020575", True])
def test_non_strings_are_never_national_ids(value: object) -> None:
    assert not is_national_id(value)
    assert not is_national_id(value, "SE")
