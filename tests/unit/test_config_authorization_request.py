"""Provider keys for how the login request travels and what comes back: par, request_object, userinfo,
max_token_bytes, allowed_login_hints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import keys
from gateway.config import load_settings
from gateway.errors import ConfigError


def document(tmp_path: Path, **provider: Any) -> dict[str, Any]:
    return {
        "public_url": "https://login.example.com",
        "upstream": "http://127.0.0.1:8082",
        "providers": [
            {"name": "p", "issuer": "https://idp.example.com", "client_id": "c", "client_secret": "s", **provider}
        ],
        "session": {"secret": "x" * 32},
    }


def problems(tmp_path: Path, **provider: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_settings(document(tmp_path, **provider), {}, base_dir=tmp_path)
    return raised.value.problems


def test_defaults(tmp_path: Path) -> None:
    provider = load_settings(document(tmp_path), {}).providers[0]
    assert (provider.par, provider.request_object, provider.userinfo) == ("auto", "off", "off")
    assert (provider.max_token_bytes, provider.allowed_login_hints) == (65536, ())


@pytest.mark.parametrize(("text", "par", "userinfo"), [("off", "off", "off"), ("required", "required", "on")])
def test_bare_words_that_yaml_reads_as_booleans_still_mean_the_words(
    tmp_path: Path, text: str, par: str, userinfo: str
) -> None:
    raw = yaml.safe_load(f"par: {text}\nuserinfo: {'on' if userinfo == 'on' else 'off'}")
    provider = load_settings(document(tmp_path, **raw), {}).providers[0]
    assert (provider.par, provider.userinfo) == (par, userinfo)


def test_a_request_object_needs_the_client_key(tmp_path: Path) -> None:
    assert problems(tmp_path, request_object="signed") == [
        "providers[0].private_key_file: is required for request_object signed (a PEM RSA or EC P-256 key)"
    ]
    (tmp_path / "client.pem").write_bytes(keys.generate_ec_pem())
    provider = load_settings(
        document(tmp_path, request_object="signed", private_key_file="client.pem"), {}, base_dir=tmp_path
    ).providers[0]
    assert provider.private_key_file == str(tmp_path / "client.pem")


def test_a_national_id_hint_needs_a_channel_that_hides_it(tmp_path: Path) -> None:
    hints = ["BID", "BID:{national_id}"]
    assert any("never travels in a URL in clear" in p for p in problems(tmp_path, allowed_login_hints=hints))
    assert any(
        "never travels in a URL in clear" in p for p in problems(tmp_path, allowed_login_hints=hints, par="auto")
    )
    provider = load_settings(document(tmp_path, allowed_login_hints=hints, par="required"), {}).providers[0]
    assert provider.allowed_login_hints == ("BID", "BID:{national_id}")


@pytest.mark.parametrize("hint", ["BID:{ssn}", "{national_id}:{national_id}", "A{"])
def test_only_one_national_id_placeholder(tmp_path: Path, hint: str) -> None:
    assert any(
        "the only placeholder is {national_id}" in p
        for p in problems(tmp_path, allowed_login_hints=[hint], par="required")
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("par", "always", "providers[0].par: must be one of auto, required, off"),
        ("par", True, "providers[0].par: must be one of auto, required, off"),
        ("request_object", "jwe", "providers[0].request_object: must be one of off, signed, encrypted"),
        ("userinfo", "json", "providers[0].userinfo: must be one of off, on, signed"),
        ("max_token_bytes", 1024, "providers[0].max_token_bytes: must be between 4096 and 1048576"),
        ("max_token_bytes", "64k", "providers[0].max_token_bytes: must be a whole number"),
        ("max_token_bytes", True, "providers[0].max_token_bytes: must be a whole number"),
    ],
)
def test_wrong_values_name_the_key(tmp_path: Path, key: str, value: Any, message: str) -> None:
    assert any(p.startswith(message) for p in problems(tmp_path, **{key: value}))


def test_poll_flows_have_no_authorization_request(tmp_path: Path) -> None:
    assert "providers[0].par: applies to flow: redirect only; remove it" in problems(
        tmp_path, flow="ciba", par="required", backchannel_authentication_endpoint="https://idp.example.com/bc"
    )
