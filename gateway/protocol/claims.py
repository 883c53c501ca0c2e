"""Verified ID-token claims -> canonical :class:`Identity`, and header encoding (pure layer).

Upstreams trust the identity headers blindly, so every value is held to a strict shape
here and never coerced: a list is not joined, an int is not stringified, a name is not
truncated (attacks.md T12-T14). Header values are then encoded so that no claim can
smuggle CR/LF/NUL or raw UTF-8 into a header (T12, T13).
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Literal
from urllib.parse import quote, unquote

from gateway.protocol import national_id

CANONICAL_CLAIMS: tuple[str, ...] = (
    "ssn",
    "name",
    "given_name",
    "family_name",
    "country",
    "birthdate",
    "sub",
    "idp",
    "acr",
    "amr",
    "auth_time",
    "level",
)

# "sub" and "idp" identify the account; letting a mapping redirect them to another
# claim (or a constant) would let configuration merge distinct users.
_RESERVED_CLAIMS = frozenset({"sub", "idp", "level"})

# Defaults applied before the configured mapping, which may override them.
_DEFAULT_SOURCES: Mapping[str, str] = {"acr": "acr", "amr": "amr", "auth_time": "auth_time"}
MAX_AMR_VALUES = 16

MAX_NAME_CHARS = 256
MAX_NAME_BYTES = 1024
MAX_SUB_CHARS = 255
MAX_ACR_CHARS = 256
# 9999-12-31T23:59:59Z; anything later is not a time, and str() of a huge int can
# itself raise ValueError (the int max-digits guard).
MAX_AUTH_TIME = 253_402_300_799

# Unicode categories refused in names and sub: controls (CR, LF, NUL), format characters
# (bidi overrides, zero-width joiners), line/paragraph separators (U+2028 splits lines
# in logs and JavaScript), lone surrogates, private-use and unassigned code points.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})

_COUNTRY = re.compile(r"[A-Z]{2}")
_BIRTHDATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class ClaimError(ValueError):
    """A claim is missing or has the wrong shape; the login must fail.

    ``reason`` is a short machine string ("ssn_shape", "missing_sub", ...) that is safe
    for logs and metric labels: it never contains the offending value.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Identity:
    """The canonical, validated identity of a signed-in user.

    ``values`` maps canonical claim names to strings. It is copied into a read-only
    mapping, so an Identity cannot change after the checks that produced it.
    """

    values: Mapping[str, str]

    def __post_init__(self) -> None:
        # Structural invariants only; the shape checks live in map_claims. This also
        # guards an Identity rebuilt from a stored session via Identity(values=...).
        copied = dict(self.values)
        for key, value in copied.items():
            if key not in CANONICAL_CLAIMS:
                raise ClaimError("unknown_claim")
            if not isinstance(value, str):
                raise ClaimError(f"{key}_shape")
        for key in ("sub", "idp"):
            if not copied.get(key):
                raise ClaimError(f"missing_{key}")
        object.__setattr__(self, "values", MappingProxyType(copied))

    @property
    def sub(self) -> str:
        """The provider's subject identifier."""
        return self.values["sub"]

    @property
    def idp(self) -> str:
        """The configured name of the provider that authenticated the user."""
        return self.values["idp"]

    def __hash__(self) -> int:
        # The generated hash would fail on the mapping proxy; hash the items instead.
        return hash(frozenset(self.values.items()))

    def get(self, name: str) -> str | None:
        """Return one canonical value, or None when the provider did not supply it."""
        return self.values.get(name)

    def to_json(self) -> dict[str, str]:
        """Return a plain, mutable copy suitable for json.dumps."""
        return dict(self.values)


def map_claims(
    raw: Mapping[str, object],
    mapping: Mapping[str, str],
    *,
    provider: str,
    required: Collection[str] = (),
) -> Identity:
    """Build an Identity from verified ID-token claims.

    ``mapping`` maps canonical names to source claim names; a source starting with "="
    is a constant ("=NO"), shape-checked like any claim. ``sub`` always comes from
    ``raw["sub"]`` and ``idp`` is always ``provider``. A canonical name in ``required``
    that ends up absent raises ClaimError("missing_<name>").
    """
    for name in (*mapping, *required):
        if name not in CANONICAL_CLAIMS:
            raise ClaimError("unknown_claim")
    if _RESERVED_CLAIMS & mapping.keys():
        raise ClaimError("reserved_claim")

    sources = {**_DEFAULT_SOURCES, **mapping}
    found: dict[str, object] = {}
    for name, source in sources.items():
        value = source[1:] if source.startswith("=") else raw.get(source)
        if value is not None:
            found[name] = value

    values: dict[str, str] = {"sub": _check_sub(raw.get("sub")), "idp": provider}
    # Country first: it selects which national identity-number format ssn must have.
    for name in ("country", *CANONICAL_CLAIMS):
        if name in values or name not in found:
            continue
        if name == "ssn":
            values[name] = _check_ssn(found[name], values.get("country"))
        else:
            values[name] = _CHECKS[name](name, found[name])

    for name in required:
        if name not in values:
            raise ClaimError(f"missing_{name}")
    return Identity(values={name: values[name] for name in CANONICAL_CLAIMS if name in values})


def validate_claim_mapping(mapping: Mapping[str, str]) -> list[str]:
    """Return every problem with a configured claim mapping, for config validation.

    map_claims raises on the same problems, but only at login time.
    """
    problems: list[str] = []
    for name, source in mapping.items():
        if name in _RESERVED_CLAIMS:
            problems.append(f"{name}: cannot be mapped; it always comes from the provider")
        elif name not in CANONICAL_CLAIMS:
            problems.append(f"{name}: unknown claim; expected one of {', '.join(CANONICAL_CLAIMS)}")
        elif not source or source == "=":
            problems.append(f"{name}: empty source claim")
    return problems


def _check_sub(value: object) -> str:
    # No NFC here: sub is an opaque identifier compared byte for byte, and normalising
    # it could merge two distinct accounts.
    if value is None:
        raise ClaimError("missing_sub")
    if not isinstance(value, str) or not value or _has_forbidden_char(value):
        raise ClaimError("sub_shape")
    if len(value) > MAX_SUB_CHARS:
        raise ClaimError("sub_too_long")
    return value


def _check_name(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ClaimError(f"{name}_shape")
    # NFC never shrinks text by anything like 16x, so a longer input cannot fit the
    # cap; refusing it early keeps normalisation cheap.
    if len(value) > 16 * MAX_NAME_CHARS:
        raise ClaimError(f"{name}_too_long")
    if not value or _has_forbidden_char(value):
        raise ClaimError(f"{name}_shape")
    # NFC so that "A\u030asa" (macOS, some IdPs) and "Åsa" are the same person.
    normalised = unicodedata.normalize("NFC", value)
    if len(normalised) > MAX_NAME_CHARS or len(normalised.encode("utf-8")) > MAX_NAME_BYTES:
        raise ClaimError(f"{name}_too_long")
    return normalised


def _has_forbidden_char(value: str) -> bool:
    return any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in value)


def _check_country(name: str, value: object) -> str:
    if not isinstance(value, str) or not _COUNTRY.fullmatch(value):
        raise ClaimError(f"{name}_shape")
    return value


def _check_birthdate(name: str, value: object) -> str:
    if not isinstance(value, str) or not _BIRTHDATE.fullmatch(value):
        raise ClaimError(f"{name}_shape")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ClaimError(f"{name}_shape") from None
    return value


def _check_acr(name: str, value: object) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_ACR_CHARS
        or any(not " " <= char <= "~" for char in value)
    ):
        raise ClaimError(f"{name}_shape")
    return value


def _check_amr(name: str, value: object) -> str:
    """RFC 8176 methods, kept as one space-separated string (the identity holds text only)."""
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_AMR_VALUES
        or not all(isinstance(v, str) and 1 <= len(v) <= 64 and all("!" <= c <= "~" for c in v) for v in value)
    ):
        raise ClaimError(f"{name}_shape")
    return " ".join(value)


def _check_auth_time(name: str, value: object) -> str:
    # bool is an int subclass; True must not become auth_time "1".
    if type(value) is not int or not 0 <= value <= MAX_AUTH_TIME:
        raise ClaimError(f"{name}_shape")
    return str(value)


_CHECKS: Mapping[str, Callable[[str, object], str]] = {
    "name": _check_name,
    "given_name": _check_name,
    "family_name": _check_name,
    "country": _check_country,
    "birthdate": _check_birthdate,
    "acr": _check_acr,
    "amr": _check_amr,
    "auth_time": _check_auth_time,
}


def _check_ssn(value: object, country: str | None) -> str:
    """Accept a national identity number of ``country``'s scheme (SE, NO, DK, FI, IS; see national_id)."""
    if not isinstance(value, str) or not national_id.is_national_id(value, country):
        raise ClaimError("ssn_shape")
    return value


def is_national_id(value: str, country: str | None = None) -> bool:
    """True for a valid Nordic national identity number (the same check as the ssn claim)."""
    return national_id.is_national_id(value, country)


HeaderEncoding = Literal["rfc8187", "base64url"]

_EXT_VALUE_PREFIX = "UTF-8''"
# Characters that force the ext-value form: "'" keeps decoding unambiguous (a raw
# value can then never start with "UTF-8''"), "%" would be read as an escape, and
# '"' and "\\" are special in quoted-strings of structured headers.
_RFC8187_RAW_CHARS = frozenset(map(chr, range(0x20, 0x7F))) - frozenset("'%\"\\")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def encode_header_value(value: str, encoding: HeaderEncoding = "rfc8187") -> str:
    """Encode a claim value as printable ASCII for an upstream request header.

    ``rfc8187`` sends plain printable ASCII as is and everything else as an RFC 8187
    §3.2 ext-value, ``UTF-8''`` + percent-encoded NFC UTF-8. ``base64url`` always sends
    unpadded base64url of the NFC UTF-8 bytes. Never raises for any str: lone
    surrogates, which UTF-8 cannot represent, become U+FFFD.
    """
    text = unicodedata.normalize("NFC", _SURROGATE.sub("\ufffd", value))
    if encoding == "base64url":
        return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")
    # Leading/trailing spaces would be stripped as header whitespace (RFC 9110 §5.5).
    if value == value.strip(" ") and all(char in _RFC8187_RAW_CHARS for char in value):
        return value
    return _EXT_VALUE_PREFIX + quote(text, safe="")


def decode_header_value(value: str) -> str:
    """Invert the ``rfc8187`` encoding; upstreams may copy this function.

    A value starting with ``UTF-8''`` (charset case-insensitive, RFC 8187 §3.2.1) is
    percent-decoded as strict UTF-8 (UnicodeDecodeError, a ValueError, on bytes that
    are not UTF-8); any other value was sent as is.
    """
    if value[: len(_EXT_VALUE_PREFIX)].upper() != _EXT_VALUE_PREFIX:
        return value
    return unquote(value[len(_EXT_VALUE_PREFIX) :], errors="strict")
