"""`forward_auth.listen`: a listener of its own for /_auth/verify; wrong values name the key and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError


def config(**extra: Any) -> dict[str, Any]:
    return {
        "listen": "127.0.0.1:8080",
        "public_url": "https://login.example.com",
        "upstream": "http://127.0.0.1:8082",
        "providers": [{"name": "dev", "issuer": "https://idp.example.com", "client_id": "c", "client_secret": "s"}],
        "session": {"secret": "x" * 32},
        "metrics": {"listen": "127.0.0.1:9090"},
        **extra,
    }


def test_unset_means_verify_on_the_public_listener() -> None:
    assert load_settings(config(), {}).forward_auth_listen is None


def test_set() -> None:
    settings = load_settings(config(forward_auth={"listen": "0.0.0.0:8090"}), {})
    assert settings.forward_auth_listen == ("0.0.0.0", 8090)


@pytest.mark.parametrize(("raw", "problem"), [
    ({"listen": "8090"}, "forward_auth.listen: must be host:port"),
    ({"listen": "127.0.0.1:8080"}, "forward_auth.listen: must differ from listen and metrics.listen"),
    ({"listen": "127.0.0.1:9090"}, "forward_auth.listen: must differ from listen and metrics.listen"),
    ({"port": 8090}, "forward_auth.port: unknown key"),
    ("127.0.0.1:8090", "forward_auth: must be a mapping"),
])
def test_wrong_values(raw: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(config(forward_auth=raw), {})
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems
