"""The ``headers`` and ``assertion`` sections: which verified claims reach the upstream, under which names,
and the signed assertion that carries them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.reader import Problems, Reader
from gateway.config.schema import ASSERTION_KEYS
from gateway.config.yaml_loader import plain_word, quote_scalar
from gateway.protocol.claims import CANONICAL_CLAIMS
from gateway.protocol.pairwise import PAIRWISE_CLAIM

DEFAULT_HEADERS = {"ssn": "X-Auth-Ssn", "name": "X-Auth-Name", "country": "X-Auth-Country"}
HEADER_ENCODINGS = ("rfc8187", "base64url")
HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}\Z")
#: What a ``headers`` map may name: the verified claims, and the per-route pseudonym derived from them.
RELEASABLE_CLAIMS: tuple[str, ...] = (*CANONICAL_CLAIMS, PAIRWISE_CLAIM)


@dataclass(frozen=True, slots=True)
class AssertionSettings:
    header: str = "X-Auth-Assertion"
    signing_key_file: str | None = None
    published_key_files: tuple[str, ...] = ()
    audience: str = "upstream"
    ttl: float = 60


def load_headers(
    headers_raw: Mapping[str, Any] | None,
    problems: Problems,
    *,
    path: str = "headers",
    default: Mapping[str, str] = DEFAULT_HEADERS,
) -> dict[str, str]:
    """A ``headers`` map (canonical claim -> header name); ``default`` when the key is absent."""
    headers = dict(default) if headers_raw is None else {}
    for canonical, header in (headers_raw or {}).items():
        if canonical not in RELEASABLE_CLAIMS:
            problems.add(f"{path}.{canonical}", f"unknown canonical claim; use one of {', '.join(RELEASABLE_CLAIMS)}")
        elif not isinstance(header, str) and (word := plain_word(headers_raw or {}, canonical)) is not None:
            problems.add(f"{path}.{canonical}", quote_scalar(word, header))
        elif not isinstance(header, str) or not HEADER_NAME.match(header):
            problems.add(f"{path}.{canonical}", "must be a header name of letters, digits and '-', e.g. X-Auth-Ssn")
        else:
            headers[canonical] = header
    return headers


def load_assertion(assertion_raw: Mapping[str, Any], problems: Problems, base: Path) -> AssertionSettings:
    problems.unknown_keys("assertion.", assertion_raw, ASSERTION_KEYS)
    ar = Reader(assertion_raw, "assertion.", problems)
    assertion_header = ar.string("header", "X-Auth-Assertion") or "X-Auth-Assertion"
    if not HEADER_NAME.match(assertion_header):
        problems.add("assertion.header", "must be a header name of letters, digits and '-'")
    key_file = ar.string("signing_key_file")
    if key_file and not (base / key_file).is_file():
        problems.add(
            "assertion.signing_key_file",
            f"file {base / key_file} does not exist; create one with: eid-gateway keygen --out {key_file}",
        )
    published = ar.strings("published_key_files")
    for i, extra in enumerate(published):
        if not (base / extra).is_file():
            problems.add(f"assertion.published_key_files[{i}]", f"file {base / extra} does not exist")
    assertion = AssertionSettings(
        header=assertion_header,
        signing_key_file=str(base / key_file) if key_file else None,
        published_key_files=tuple(str(base / p) for p in published),
        audience=ar.string("audience", "upstream") or "upstream",
        ttl=ar.duration("ttl", 60),
    )
    if not 5 <= assertion.ttl <= 3600:
        problems.add("assertion.ttl", "must be between 5s and 1h")
    return assertion


def check_header_names_distinct(
    headers: Mapping[str, str], assertion_header: str, problems: Problems, *, path: str = "headers"
) -> None:
    lowered = [h.lower().replace("_", "-") for h in [*headers.values(), assertion_header]]
    if len(set(lowered)) != len(lowered):
        problems.add(path, "two identity headers have the same name (case and _/- are ignored)")
