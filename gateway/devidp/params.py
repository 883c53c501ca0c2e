"""Request parameters as plain mappings, refusing repeated names (RFC 6749 §3.1, §3.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from multidict import MultiMapping

Params = Mapping[str, Sequence[str]]


class RepeatedParameterError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"parameter {name} must not be repeated")
        self.name = name


def collect_params(source: MultiMapping[Any]) -> dict[str, list[str]]:
    """Copy a query or urlencoded body; non-text values (file uploads) are dropped."""
    return {name: [value for value in source.getall(name) if isinstance(value, str)] for name in set(source.keys())}


def single(params: Params, name: str) -> str | None:
    """The one value of ``name``; an empty value counts as absent (RFC 6749 §3.1)."""
    values = params.get(name, ())
    if len(values) > 1:
        raise RepeatedParameterError(name)
    return values[0] if values and values[0] != "" else None


def check_no_repeats(params: Params) -> None:
    for name, values in params.items():
        if len(values) > 1:
            raise RepeatedParameterError(name)
