"""gateway/protocol/assurance.py: the level of a returned acr, BankID Norway's ;LOA= suffix included."""

from __future__ import annotations

import pytest

from gateway.protocol.assurance import acr_values_for, level_of, with_level
from gateway.protocol.claims import Identity

BANKID_NO = {"urn:bankid:bis": 3, "urn:bankid:bid": 4}
IDPORTEN = {"idporten-loa-substantial": 3, "idporten-loa-high": 4, "Level3": 3, "Level4": 4}


@pytest.mark.parametrize(
    ("acr", "levels", "expected"),
    [
        ("urn:bankid:bid;LOA=4", BANKID_NO, 4),
        ("urn:bankid:bis;LOA=3", BANKID_NO, 3),
        ("urn:bankid:bid", BANKID_NO, 4),
        ("urn:bankid:bidx", BANKID_NO, None),  # a longer name is not a parameter
        ("urn:bankid:bid:LOA=4", BANKID_NO, None),
        ("idporten-loa-high", IDPORTEN, 4),
        ("Level3", IDPORTEN, 3),
        ("unknown", IDPORTEN, None),
        (None, IDPORTEN, None),
        ("urn:bankid:bid;LOA=4", {}, None),
        ("x;y", {"x;y": 7, "x": 1}, 7),  # an exact entry wins over the base
    ],
)
def test_level_of(acr: str | None, levels: dict[str, int], expected: int | None) -> None:
    assert level_of(acr, levels) == expected


def test_with_level_sets_the_claim_only_when_known() -> None:
    raised = with_level(Identity(values={"sub": "s", "idp": "p", "acr": "urn:bankid:bid;LOA=4"}), BANKID_NO)
    assert raised.get("level") == "4"
    plain = Identity(values={"sub": "s", "idp": "p", "acr": "other"})
    assert with_level(plain, BANKID_NO) is plain


def test_step_up_asks_for_the_lowest_sufficient_values() -> None:
    asked = acr_values_for(3, ("idporten-loa-high", "idporten-loa-substantial", "x"), IDPORTEN)
    assert asked == ("idporten-loa-substantial", "idporten-loa-high")
    assert acr_values_for(5, ("idporten-loa-high",), IDPORTEN) == ()
