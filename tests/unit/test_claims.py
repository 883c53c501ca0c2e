"""Claim mapping and header encoding: attacks.md T12 (CR/LF/NUL), T13 (Unicode), T14 (shapes)."""

from __future__ import annotations

import base64
import dataclasses
import unicodedata

import pytest

from gateway.protocol.claims import (
    CANONICAL_CLAIMS,
    ClaimError,
    Identity,
    decode_header_value,
    encode_header_value,
    map_claims,
    validate_claim_mapping,
)

FULL_MAPPING = {
    "ssn": "ssn",
    "name": "name",
    "given_name": "given_name",
    "family_name": "family_name",
    "country": "country",
    "birthdate": "birthdate",
}


def claims_error(
    raw: dict[str, object], mapping: dict[str, str] | None = None, required: tuple[str, ...] = ()
) -> str:
    with pytest.raises(ClaimError) as info:
        map_claims(raw, FULL_MAPPING if mapping is None else mapping, provider="bankid-se", required=required)
    return info.value.reason


# --- mapping --------------------------------------------------------------------------


def test_map_claims_full_identity() -> None:
    raw = {
        "sub": "u1",
        "ssn": "196802020575",
        "name": "Åsa Öberg",
        "given_name": "Åsa",
        "family_name": "Öberg",
        "country": "SE",
        "birthdate": "1968-02-02",
        "acr": "urn:grn:authn:se:bankid:same-device",
        "amr": ["bankid", "hwk"],
        "auth_time": 1_700_000_000,
        "nonce": "ignored",
    }
    identity = map_claims(raw, FULL_MAPPING, provider="bankid-se")
    assert identity.to_json() == {
        "ssn": "196802020575",
        "name": "Åsa Öberg",
        "given_name": "Åsa",
        "family_name": "Öberg",
        "country": "SE",
        "birthdate": "1968-02-02",
        "sub": "u1",
        "idp": "bankid-se",
        "acr": "urn:grn:authn:se:bankid:same-device",
        "amr": "bankid hwk",
        "auth_time": "1700000000",
    }
    # level is not a provider claim: the gateway sets it from acr_levels (protocol/assurance.py).
    assert list(identity.to_json()) == [c for c in CANONICAL_CLAIMS if c != "level"]
    assert identity.sub == "u1"
    assert identity.idp == "bankid-se"
    assert identity.get("country") == "SE"


def test_map_claims_minimal_identity_has_only_sub_and_idp() -> None:
    identity = map_claims({"sub": "u1"}, {}, provider="p")
    assert identity.to_json() == {"sub": "u1", "idp": "p"}
    assert identity.get("ssn") is None
    assert identity.get("acr") is None


def test_map_claims_renames_source_claims() -> None:
    raw = {"sub": "u1", "personal_identity_number": "196802020575", "urn:name": "Åsa"}
    identity = map_claims(raw, {"ssn": "personal_identity_number", "name": "urn:name"}, provider="p")
    assert identity.to_json() == {"ssn": "196802020575", "name": "Åsa", "sub": "u1", "idp": "p"}


def test_map_claims_constant_source() -> None:
    identity = map_claims({"sub": "u1", "pid": "27034698436"}, {"ssn": "pid", "country": "=NO"}, provider="p")
    assert identity.to_json() == {"ssn": "27034698436", "country": "NO", "sub": "u1", "idp": "p"}


@pytest.mark.parametrize(
    ("mapping", "reason"),
    [
        ({"country": "=se"}, "country_shape"),
        ({"country": "="}, "country_shape"),
        ({"name": "=Eve\r\nX-Auth-Ssn: 1"}, "name_shape"),
        ({"auth_time": "=5"}, "auth_time_shape"),  # constants are strings, auth_time wants an int
    ],
)
def test_map_claims_constant_is_shape_checked(mapping: dict[str, str], reason: str) -> None:
    assert claims_error({"sub": "u1"}, mapping) == reason


def test_map_claims_mapping_overrides_acr_and_auth_time() -> None:
    raw = {"sub": "u1", "acr": "low", "auth_time": 1, "loa": "substantial", "at": 7}
    identity = map_claims(raw, {"acr": "loa", "auth_time": "at"}, provider="p")
    assert identity.get("acr") == "substantial"
    assert identity.get("auth_time") == "7"


def test_map_claims_ignores_mapping_attempts_on_raw_sub_and_idp_claims() -> None:
    # An "idp" claim inside the token never replaces the configured provider name.
    identity = map_claims({"sub": "u1", "idp": "evil"}, {}, provider="bankid-se")
    assert identity.idp == "bankid-se"


@pytest.mark.parametrize(
    ("mapping", "required", "reason"),
    [
        ({"email": "email"}, (), "unknown_claim"),
        ({"Name": "name"}, (), "unknown_claim"),
        ({}, ("email",), "unknown_claim"),
        ({"sub": "sub"}, (), "reserved_claim"),
        ({"sub": "email"}, (), "reserved_claim"),
        ({"idp": "=other"}, (), "reserved_claim"),
    ],
)
def test_map_claims_rejects_bad_mapping(
    mapping: dict[str, str], required: tuple[str, ...], reason: str
) -> None:
    assert claims_error({"sub": "u1", "email": "a@b"}, mapping, required=required) == reason


@pytest.mark.parametrize(
    ("raw", "required", "reason"),
    [
        ({"sub": "u1"}, ("ssn",), "missing_ssn"),
        ({"sub": "u1", "ssn": None}, ("ssn",), "missing_ssn"),
        ({"sub": "u1", "ssn": "196802020575"}, ("ssn", "name"), "missing_name"),
        ({"sub": "u1", "ssn": "196802020575", "name": "A"}, ("country",), "missing_country"),
        ({"sub": "u1"}, ("acr",), "missing_acr"),
        ({}, (), "missing_sub"),
        ({"sub": None}, (), "missing_sub"),
    ],
)
def test_map_claims_missing_required(raw: dict[str, object], required: tuple[str, ...], reason: str) -> None:
    assert claims_error(raw, required=required) == reason


def test_map_claims_absent_optional_claims_are_left_out() -> None:
    identity = map_claims({"sub": "u1", "name": None, "country": "SE"}, FULL_MAPPING, provider="p")
    assert identity.to_json() == {"country": "SE", "sub": "u1", "idp": "p"}


def test_map_claims_required_sub_and_idp_are_always_satisfied() -> None:
    identity = map_claims({"sub": "u1"}, {}, provider="p", required=("sub", "idp"))
    assert identity.to_json() == {"sub": "u1", "idp": "p"}


# --- sub ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sub", "reason"),
    [
        ("", "sub_shape"),
        (12345, "sub_shape"),
        (["u1"], "sub_shape"),
        (True, "sub_shape"),
        ("u1\r\nX-Auth-Ssn: 1", "sub_shape"),
        ("u1\x00", "sub_shape"),
        ("u1\u2028", "sub_shape"),
        ("u1\u202e", "sub_shape"),
        ("x" * 256, "sub_too_long"),
    ],
)
def test_sub_shape(sub: object, reason: str) -> None:
    assert claims_error({"sub": sub}, {}) == reason


@pytest.mark.parametrize("sub", ["u1", "x" * 255, "248289761001", "auth0|5f7c8ec7c33c6c004bbafe82", "Åsa"])
def test_sub_accepted_verbatim(sub: str) -> None:
    assert map_claims({"sub": sub}, {}, provider="p").sub == sub


def test_sub_is_not_nfc_normalised() -> None:
    # Two accounts whose subs differ only in normalisation must stay two accounts.
    assert map_claims({"sub": "A\u030a"}, {}, provider="p").sub == "A\u030a"


# --- ssn (T14) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ssn", "country"),
    [
        ("196802020575", None),
        ("196802020575", "SE"),
        ("199001011239", "SE"),
        ("199001611236", "SE"),  # samordningsnummer: day + 60
        ("200002291235", "SE"),  # 29 Feb in a leap year
        ("27034698436", None),
        ("27034698436", "NO"),
        ("16084138758", "NO"),
        ("41017012337", "NO"),  # D-number: day + 40, date not checked on purpose
        ("2101270087", None),
        ("2101270087", "DK"),
        ("2902004234", "DK"),  # seventh digit 4 and year 00 -> 2000, a leap year
        ("196802020575", "GB"),  # a non-Nordic country (a nationality) accepts any Nordic scheme
        ("27034698436", "GB"),
        ("2101270087", "GB"),
        ("131052-308T", "FI"),
        ("131052-308T", None),
        ("1201743399", "IS"),
    ],
)
def test_ssn_accepted(ssn: str, country: str | None) -> None:
    raw = {"sub": "u1", "ssn": ssn, "country": country}
    assert map_claims(raw, FULL_MAPPING, provider="p").get("ssn") == ssn


@pytest.mark.parametrize(
    ("ssn", "country"),
    [
        # attacks.md T14
        (["199001011234", "200001011234"], None),
        (["196802020575"], None),
        ("199001011234,200001011234", None),
        (199001011234, None),
        (196802020575, None),
        (True, None),
        ({"ssn": "196802020575"}, None),
        ("", None),
        ("19900101-1234 ", None),
        ("19680202-0575", None),
        ("680202-0575", None),
        (" 196802020575", None),
        ("196802020575\n", None),
        ("196802020575 ", None),
        # wrong check digit / date
        ("199001011234", None),  # Luhn fails (BASE token in attacks.md)
        ("199001011234", "SE"),
        ("196802020576", None),
        ("190002291235", None),  # Luhn fine, but 1900 is not a leap year
        ("199013011231", None),  # month 13
        ("199001321234", None),  # day 32, not a samordningsnummer either (day <= 60)
        ("199001921234", None),  # day 92 - 60 = 32
        ("07025312345", None),
        ("27034698437", "NO"),  # second check digit off
        ("27034698446", "NO"),  # first check digit off
        ("2902001234", "DK"),  # 1900 is not a leap year
        ("3102271234", "DK"),
        ("0000000000", None),
        # right format for the wrong country
        ("196802020575", "NO"),
        ("196802020575", "DK"),
        ("27034698436", "SE"),
        ("2101270087", "SE"),
        ("2101270087", "NO"),
        ("196802020575", "FI"),  # a Nordic country holds the number to its own scheme
        ("2101270087", "FI"),
        ("131052-308T", "SE"),
        ("2101270087", "IS"),  # a valid CPR, not a kennitala
        # other digit systems and lengths
        (
            "\u0661\u0669\u0666\u0668\u0660\u0662\u0660\u0662\u0660\u0665\u0667\u0665",
            None,
        ),  # Arabic-Indic: isdigit() is True
        (
            "\uff11\uff19\uff16\uff18\uff10\uff12\uff10\uff12\uff10\uff15\uff17\uff15",
            None,
        ),  # full-width digits
        ("1968020205751", None),
        ("123456789", None),
    ],
)
def test_ssn_rejected(ssn: object, country: str | None) -> None:
    assert claims_error({"sub": "u1", "ssn": ssn, "country": country}) == "ssn_shape"


def test_ssn_shape_error_never_contains_the_value() -> None:
    with pytest.raises(ClaimError) as info:
        map_claims({"sub": "u1", "ssn": "199001011234"}, FULL_MAPPING, provider="p")
    assert "1990" not in str(info.value)
    assert "1990" not in repr(info.value)


# --- names (T12, T13) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Åsa Öberg", "Åsa Öberg"),
        ("A\u030asa O\u0308berg", "Åsa Öberg"),
        ("Zoë 李 😀", "Zoë 李 😀"),
        ("Ærø-Ångström", "Ærø-Ångström"),
        ("O'Brien", "O'Brien"),
        ("A", "A"),
        (" padded ", " padded "),
        ("Å" * 256, "Å" * 256),
        ("A\u030a" * 256, "Å" * 256),  # 512 chars in, 256 after NFC
        ("😀" * 256, "😀" * 256),  # exactly 1024 UTF-8 bytes
    ],
)
def test_name_accepted_and_nfc_normalised(name: str, expected: str) -> None:
    identity = map_claims({"sub": "u1", "n": name}, {"name": "n", "given_name": "n"}, provider="p")
    assert identity.get("name") == expected
    assert identity.get("given_name") == expected
    assert unicodedata.is_normalized("NFC", identity.get("name") or "")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Eve\r\nX-Auth-Ssn: 190001010000", "name_shape"),
        ("Eve\rX", "name_shape"),
        ("Eve\nX", "name_shape"),
        ("Eve\x00", "name_shape"),
        ("Eve\u2028", "name_shape"),  # Zl
        ("Eve\u2029", "name_shape"),  # Zp
        ("Eve\u202eevE", "name_shape"),  # Cf: right-to-left override
        ("Eve\u200b", "name_shape"),  # Cf: zero-width space
        ("Eve\x85", "name_shape"),  # Cc: C1 NEL
        ("Eve\x1b[31m", "name_shape"),  # Cc: ANSI escape
        ("Eve\ud800", "name_shape"),  # Cs: lone surrogate
        ("Eve\ue000", "name_shape"),  # Co: private use
        ("Eve\u0378", "name_shape"),  # Cn: unassigned
        ("", "name_shape"),
        ({"a": 1}, "name_shape"),
        (["Eve", "Mallory"], "name_shape"),
        (42, "name_shape"),
        (False, "name_shape"),
        ("Å" * 257, "name_too_long"),
        ("A\u030a" * 257, "name_too_long"),
        ("😀" * 257, "name_too_long"),  # 257 chars and 1028 bytes
        ("😀" * 200 + "李" * 56 + "x", "name_too_long"),
        ("Å" * 10_000, "name_too_long"),
    ],
)
def test_name_rejected(name: object, reason: str) -> None:
    assert claims_error({"sub": "u1", "name": name}) == reason


def test_name_at_both_caps_is_accepted() -> None:
    # 256 four-byte characters hit the character cap and the byte cap together.
    name = "😀" * 256
    assert len(name.encode("utf-8")) == 1024
    assert map_claims({"sub": "u1", "name": name}, FULL_MAPPING, provider="p").get("name") == name


@pytest.mark.parametrize("field", ["given_name", "family_name"])
def test_given_and_family_name_reasons_name_the_field(field: str) -> None:
    assert claims_error({"sub": "u1", field: "x\ny"}) == f"{field}_shape"
    assert claims_error({"sub": "u1", field: "x" * 257}) == f"{field}_too_long"


# --- country, birthdate, acr, auth_time (T14) -----------------------------------------


@pytest.mark.parametrize("country", ["SE", "NO", "DK", "FI", "ZZ"])
def test_country_accepted(country: str) -> None:
    assert map_claims({"sub": "u1", "country": country}, FULL_MAPPING, provider="p").get("country") == country


@pytest.mark.parametrize(
    "country",
    [
        "se",
        "Se",
        "SWE",
        "SE,NO",
        "S",
        "",
        "SE ",
        "SE\n",
        "SE\nX-Admin: 1",
        "\uff33\uff25",
        "ÅÖ",
        ["SE"],
        46,
        True,
    ],
)
def test_country_rejected(country: object) -> None:
    assert claims_error({"sub": "u1", "country": country}) == "country_shape"


@pytest.mark.parametrize("birthdate", ["1968-02-02", "2000-02-29", "0001-01-01"])
def test_birthdate_accepted(birthdate: str) -> None:
    assert map_claims({"sub": "u1", "birthdate": birthdate}, FULL_MAPPING, provider="p").get("birthdate") == (
        birthdate
    )


@pytest.mark.parametrize(
    "birthdate",
    [
        "1900-02-29",
        "1968-13-01",
        "1968-02-30",
        "19680202",
        "1968-2-2",
        "1968-02-02T00:00:00",
        "1968-02-02 ",
        "1968-W05-5",
        "0000-01-01",
        "1968-02-0\uff12",
        "",
        19680202,
        ["1968-02-02"],
    ],
)
def test_birthdate_rejected(birthdate: object) -> None:
    assert claims_error({"sub": "u1", "birthdate": birthdate}) == "birthdate_shape"


@pytest.mark.parametrize("acr", ["urn:grn:authn:se:bankid:same-device", "3", "a b", "~" * 256])
def test_acr_accepted(acr: str) -> None:
    assert map_claims({"sub": "u1", "acr": acr}, {}, provider="p").get("acr") == acr


@pytest.mark.parametrize("acr", ["", "a\tb", "a\nb", "nivå", "\x7f", "~" * 257, 3, ["a"], {"a": 1}])
def test_acr_rejected(acr: object) -> None:
    assert claims_error({"sub": "u1", "acr": acr}, {}) == "acr_shape"


@pytest.mark.parametrize(
    ("auth_time", "expected"),
    [(0, "0"), (1_700_000_000, "1700000000"), (253_402_300_799, "253402300799")],
)
def test_auth_time_accepted(auth_time: int, expected: str) -> None:
    assert map_claims({"sub": "u1", "auth_time": auth_time}, {}, provider="p").get("auth_time") == expected


@pytest.mark.parametrize(
    "auth_time",
    [
        True,
        False,
        -1,
        1.5,
        1_700_000_000.0,
        "1700000000",
        [1],
        253_402_300_800,
        pytest.param(10**5000, id="10**5000"),
    ],
)
def test_auth_time_rejected(auth_time: object) -> None:
    assert claims_error({"sub": "u1", "auth_time": auth_time}, {}) == "auth_time_shape"


# --- Identity -------------------------------------------------------------------------


def test_identity_is_immutable() -> None:
    source = {"sub": "u1", "idp": "p"}
    identity = Identity(values=source)
    source["ssn"] = "196802020575"
    assert identity.get("ssn") is None
    with pytest.raises(TypeError):
        identity.values["ssn"] = "196802020575"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.values = {}  # type: ignore[misc]
    exported = identity.to_json()
    exported["sub"] = "u2"
    assert identity.sub == "u1"
    assert type(exported) is dict


def test_identity_equality_and_hash() -> None:
    first = map_claims({"sub": "u1", "name": "A\u030asa"}, FULL_MAPPING, provider="p")
    second = map_claims({"sub": "u1", "name": "Åsa"}, FULL_MAPPING, provider="p")
    assert first == second
    assert hash(first) == hash(second)
    assert first != map_claims({"sub": "u2", "name": "Åsa"}, FULL_MAPPING, provider="p")


def test_identity_round_trips_through_json() -> None:
    identity = map_claims({"sub": "u1", "ssn": "196802020575"}, FULL_MAPPING, provider="p")
    assert Identity(values=identity.to_json()) == identity


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"idp": "p"}, "missing_sub"),
        ({"sub": "u1"}, "missing_idp"),
        ({"sub": "", "idp": "p"}, "missing_sub"),
        ({"sub": "u1", "idp": "p", "email": "a@b"}, "unknown_claim"),
        ({"sub": "u1", "idp": "p", "auth_time": 5}, "auth_time_shape"),
    ],
)
def test_identity_structural_invariants(values: dict[str, object], reason: str) -> None:
    with pytest.raises(ClaimError) as info:
        Identity(values=values)  # type: ignore[arg-type]
    assert info.value.reason == reason


def test_claim_error_is_value_error_with_reason() -> None:
    error = ClaimError("ssn_shape")
    assert isinstance(error, ValueError)
    assert error.reason == "ssn_shape"
    assert str(error) == "ssn_shape"


@pytest.mark.parametrize(
    ("mapping", "problems"),
    [
        (FULL_MAPPING, []),
        ({"country": "=SE"}, []),
        ({"sub": "email"}, ["sub: cannot be mapped; it always comes from the provider"]),
        (
            {"idp": "=x", "ssn": ""},
            ["idp: cannot be mapped; it always comes from the provider", "ssn: empty source claim"],
        ),
        ({"country": "="}, ["country: empty source claim"]),
        ({"email": "email"}, [f"email: unknown claim; expected one of {', '.join(CANONICAL_CLAIMS)}"]),
    ],
)
def test_validate_claim_mapping(mapping: dict[str, str], problems: list[str]) -> None:
    assert validate_claim_mapping(mapping) == problems


# --- header encoding (T12, T13) -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Test Testsson", "Test Testsson"),
        ("196802020575", "196802020575"),
        ("SE", "SE"),
        ("urn:grn:authn:se:bankid:same-device", "urn:grn:authn:se:bankid:same-device"),
        ("a-b_c.d~e!$&()*+,;=:@[]{}|^`<>?/#", "a-b_c.d~e!$&()*+,;=:@[]{}|^`<>?/#"),
        ("", ""),
        ("Åsa Öberg", "UTF-8''%C3%85sa%20%C3%96berg"),
        ("A\u030asa O\u0308berg", "UTF-8''%C3%85sa%20%C3%96berg"),
        ("O'Brien", "UTF-8''O%27Brien"),
        ("100%", "UTF-8''100%25"),
        ('say "hi"', "UTF-8''say%20%22hi%22"),
        ("back\\slash", "UTF-8''back%5Cslash"),
        (" lead", "UTF-8''%20lead"),
        ("trail ", "UTF-8''trail%20"),
        ("UTF-8''x", "UTF-8''UTF-8%27%27x"),
        ("Zoë 李 😀", "UTF-8''Zo%C3%AB%20%E6%9D%8E%20%F0%9F%98%80"),
        ("Eve\r\nX-Auth-Ssn: 1", "UTF-8''Eve%0D%0AX-Auth-Ssn%3A%201"),
        ("\x00", "UTF-8''%00"),
        ("\u2028", "UTF-8''%E2%80%A8"),
        ("tab\there", "UTF-8''tab%09here"),
        ("\x7f", "UTF-8''%7F"),
        ("\ud800", "UTF-8''%EF%BF%BD"),
    ],
)
def test_encode_rfc8187(value: str, expected: str) -> None:
    assert encode_header_value(value) == expected
    assert encode_header_value(value, "rfc8187") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("SE", "U0U"),
        ("Åsa Öberg", "w4VzYSDDlmJlcmc"),
        ("A\u030asa O\u0308berg", "w4VzYSDDlmJlcmc"),
        ("Eve\r\nX", "RXZlDQpY"),
        ("\ud800", "77-9"),
        ("??>", "Pz8-"),  # exercises the url-safe alphabet ("-" not "+")
        ("???", "Pz8_"),  # ("_" not "/")
    ],
)
def test_encode_base64url(value: str, expected: str) -> None:
    assert encode_header_value(value, "base64url") == expected


HOSTILE_VALUES = [
    "Eve\r\nX-Auth-Ssn: 1",
    "Eve\nX-Auth-Ssn: 1",
    "Eve\rX-Auth-Ssn: 1",
    "\x00",
    "a\x00b",
    "\u2028",
    "\u2029",
    "\x85",
    "\u202e",
    "\ud800",
    "\udfff\ud800",
    "\ufeff",
    "Å" * 10_000,
    "A\u030a" * 5_000,
    "😀" * 3_000,
    " ",
    "\t",
    "'",
    "%",
    "%0d%0a",
    "UTF-8''%0D%0A",
    "".join(map(chr, range(0x00, 0x100))),
]


@pytest.mark.parametrize("encoding", ["rfc8187", "base64url"])
@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_encoded_value_is_always_printable_ascii(value: str, encoding: str) -> None:
    encoded = encode_header_value(value, encoding)  # type: ignore[arg-type]
    assert all(" " <= char <= "~" for char in encoded)
    assert "\r" not in encoded and "\n" not in encoded and "\x00" not in encoded
    assert encoded == encoded.strip()


@pytest.mark.parametrize(
    "value",
    [v for v in HOSTILE_VALUES if "\ud800" not in v and "\udfff" not in v]
    + ["Åsa Öberg", "O'Brien", "plain", "", "UTF-8''x", "utf-8''x", "100%"],
)
def test_rfc8187_round_trips_to_nfc(value: str) -> None:
    assert decode_header_value(encode_header_value(value)) == unicodedata.normalize("NFC", value)


@pytest.mark.parametrize("value", ["Åsa Öberg", "A\u030asa", "Eve\r\nX", "Zoë 李 😀"])
def test_base64url_round_trips_to_nfc(value: str) -> None:
    encoded = encode_header_value(value, "base64url")
    decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    assert decoded == unicodedata.normalize("NFC", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("UTF-8''%C3%85sa", "Åsa"),
        ("utf-8''%C3%85sa", "Åsa"),
        ("UTF-8''", ""),
        ("UTF-8'en'%C3%85", "UTF-8'en'%C3%85"),  # language tags are never produced
        ("%C3%85", "%C3%85"),  # not an ext-value: sent as is, so returned as is
    ],
)
def test_decode_header_value(value: str, expected: str) -> None:
    assert decode_header_value(value) == expected


def test_decode_header_value_refuses_invalid_utf8() -> None:
    with pytest.raises(ValueError):
        decode_header_value("UTF-8''%C3")
