"""National identity numbers of the Nordic countries: shape and check-digit validation (pure layer).

The gateway forwards a national identity number as the ``ssn`` claim and accepts one as a CIBA login hint
or headless identifier. Upstreams trust it blindly, so each scheme is checked exactly as its registry
defines it, and the value is never rewritten (no hyphen added or removed, no case folded): the form the
provider sent is the form the application gets, and a form the scheme does not define is refused.

Accepted forms, by country:

==  =====================================  =============================================================
SE  ``YYYYMMDDNNNC`` (12 digits)            personnummer, samordningsnummer (day + 60); Luhn check digit
NO  ``DDMMYYIIIKK`` (11 digits)             fødselsnummer, D-nummer (day + 40), H-nummer and test persons
                                           (month + 40 / + 80); both mod-11 check digits
DK  ``DDMMYYSSSS`` (10 digits)              CPR with a real date (century from the seventh digit); no
                                           mod-11 check, which Denmark dropped in 2007
FI  ``DDMMYYCZZZQ``                        henkilötunnus: century sign ``+`` (1800s), ``-`` or
                                           ``Y X W V U`` (1900s), ``A B C D E F`` (2000s, the 2023 signs
                                           included), individual number 002-999, check character mod 31
IS  ``DDMMYYRRCK`` (10 digits)              kennitala of a person (day 01-31), mod-11 check digit ``C``,
                                           century digit ``K``: 8 (1800s), 9 (1900s), 0 (2000s)
==  =====================================  =============================================================

Without a country the form decides: 12 digits SE, 11 digits NO, a century sign FI, and 10 digits must be a
valid Danish CPR or a valid Icelandic kennitala (the value is forwarded unchanged either way, so nothing is
resolved by picking one; configure ``country`` to hold it to one scheme).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date

#: Countries whose national identity numbers have a scheme here.
COUNTRIES: tuple[str, ...] = ("SE", "NO", "DK", "FI", "IS")

_DIGITS = re.compile(r"[0-9]+")
_FINNISH = re.compile(r"(?P<date>[0-9]{6})(?P<sign>[-+A-FU-Y])(?P<individual>[0-9]{3})(?P<check>[0-9A-Y])")

_SE_WEIGHTS = (2, 1, 2, 1, 2, 1, 2, 1, 2)
_NO_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_NO_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_IS_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
#: The 31 check characters of a henkilötunnus, indexed by DDMMYYZZZ mod 31 (G, I, O, Q and Z are left out).
_FI_CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
_FI_CENTURIES: Mapping[str, int] = {
    "+": 1800,
    **dict.fromkeys("-YXWVU", 1900),
    **dict.fromkeys("ABCDEF", 2000),
}
_IS_CENTURIES: Mapping[str, int] = {"8": 1800, "9": 1900, "0": 2000}


def _is_real_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def is_swedish_personnummer(value: str) -> bool:
    """YYYYMMDDNNNC, Luhn over the last ten digits; samordningsnummer add 60 to the day."""
    if len(value) != 12 or not _DIGITS.fullmatch(value):
        return False
    day = int(value[6:8])
    if day > 60:
        day -= 60
    if not _is_real_date(int(value[0:4]), int(value[4:6]), day):
        return False
    total = 0
    for digit, weight in zip(value[2:11], _SE_WEIGHTS, strict=True):
        product = int(digit) * weight
        total += product // 10 + product % 10
    return (10 - total % 10) % 10 == int(value[11])


def is_norwegian_fodselsnummer(value: str) -> bool:
    """DDMMYYIIIKK with both mod-11 check digits.

    The date is deliberately not checked: D-numbers add 40 to the day, H-numbers 40 to the month and the
    synthetic test persons of BankID NO's test environments add 80 to the month, so a date check would
    refuse real logins.
    """
    if len(value) != 11 or not _DIGITS.fullmatch(value):
        return False
    numbers = [int(digit) for digit in value]
    for weights, position in ((_NO_WEIGHTS_1, 9), (_NO_WEIGHTS_2, 10)):
        check = 11 - sum(n * w for n, w in zip(numbers[: len(weights)], weights, strict=True)) % 11
        if check == 11:
            check = 0
        if check != numbers[position]:  # also refuses check == 10, which no number has
            return False
    return True


def is_danish_cpr(value: str) -> bool:
    """DDMMYYSSSS with a real date; the seventh digit selects the century (CPR rules)."""
    if len(value) != 10 or not _DIGITS.fullmatch(value):
        return False
    day, month, year = int(value[0:2]), int(value[2:4]), int(value[4:6])
    seventh = int(value[6])
    if seventh <= 3:
        century = 1900
    elif seventh in (4, 9):
        century = 2000 if year <= 36 else 1900
    else:
        century = 2000 if year <= 57 else 1800
    return _is_real_date(century + year, month, day)


def is_finnish_henkilotunnus(value: str) -> bool:
    """DDMMYYCZZZQ: a real date in the century of sign C, individual number 002-899, check character Q."""
    match = _FINNISH.fullmatch(value)
    if match is None:
        return False
    digits = match["date"]
    century = _FI_CENTURIES[match["sign"]]
    if not _is_real_date(century + int(digits[4:6]), int(digits[2:4]), int(digits[0:2])):
        return False
    # 000 and 001 are not issued. 900-999 are temporary numbers; they are valid and accepted (what a provider
    # verified is the provider's business), so an application must not assume 002-899.
    if int(match["individual"]) < 2:
        return False
    return _FI_CHECK_CHARACTERS[int(digits + match["individual"]) % 31] == match["check"]


def is_icelandic_kennitala(value: str) -> bool:
    """DDMMYYRRCK of a person: a real date, mod-11 check digit C over the first eight, century digit K."""
    if len(value) != 10 or not _DIGITS.fullmatch(value):
        return False
    century = _IS_CENTURIES.get(value[9])
    # Companies' kennitölur add 40 to the day; they are not persons, so they fail the date check here.
    if century is None or not _is_real_date(century + int(value[4:6]), int(value[2:4]), int(value[0:2])):
        return False
    remainder = sum(int(digit) * weight for digit, weight in zip(value[:8], _IS_WEIGHTS, strict=True)) % 11
    check = 0 if remainder == 0 else 11 - remainder
    return check != 10 and check == int(value[8])


_CHECKS: Mapping[str, Callable[[str], bool]] = {
    "SE": is_swedish_personnummer,
    "NO": is_norwegian_fodselsnummer,
    "DK": is_danish_cpr,
    "FI": is_finnish_henkilotunnus,
    "IS": is_icelandic_kennitala,
}


def is_national_id(value: object, country: str | None = None) -> bool:
    """True when ``value`` is a valid national identity number of ``country``'s scheme.

    With a country outside :data:`COUNTRIES` (or none), any of the five schemes will do: such a country claim
    is a nationality, not the registry that issued the number (a foreign citizen's samordningsnummer).
    """
    if not isinstance(value, str):
        return False
    check = _CHECKS.get(country or "")
    if check is not None:
        return check(value)
    return any(check(value) for check in _CHECKS.values())
