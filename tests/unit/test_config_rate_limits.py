"""`rate_limits`: on by default, each limit N/window or off, a wrong value names the key and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import DEFAULT_RATE_LIMITS, load_settings
from gateway.errors import ConfigError
from gateway.protocol.rate_limit import Limit


def config(**extra: Any) -> dict[str, Any]:
    return {
        "public_url": "https://login.example.com",
        "upstream": "http://127.0.0.1:8082",
        "providers": [{"name": "dev", "issuer": "https://idp.example.com", "client_id": "c", "client_secret": "s"}],
        "session": {"secret": "x" * 32},
        **extra,
    }


def test_defaults_are_on() -> None:
    settings = load_settings(config(), {})
    assert dict(settings.rate_limits) == DEFAULT_RATE_LIMITS
    assert set(DEFAULT_RATE_LIMITS) == {"login_per_client", "poll_start_per_client", "ciba_per_person"}


def test_each_limit_can_be_set_or_turned_off() -> None:
    settings = load_settings(config(rate_limits={"ciba_per_person": "2/15m", "login_per_client": "off",
                                                 "poll_start_per_client": False}), {})
    assert dict(settings.rate_limits) == {"ciba_per_person": Limit(2, 900.0)}


@pytest.mark.parametrize(("raw", "problem"), [
    ({"ciba_per_person": "5"}, "rate_limits.ciba_per_person: must be N/window such as 10/1m"),
    ({"ciba_per_person": 5}, "rate_limits.ciba_per_person: must be N/window such as 10/1m"),
    ({"ciba_per_person": "0/1m"}, "rate_limits.ciba_per_person: must be N/window such as 10/1m"),
    ({"ciba_per_persn": "5/1m"}, "rate_limits.ciba_per_persn: unknown key; did you mean 'ciba_per_person'?"),
    ("5/1m", "rate_limits: must be a mapping of key: value"),
])
def test_wrong_values_name_the_key_and_the_fix(raw: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(config(rate_limits=raw), {})
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems

