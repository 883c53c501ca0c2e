"""The configs we ship load, and config/demo.yaml says the same as the demo command runs."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway import keys
from gateway.config import load_file, load_settings
from gateway.demo import demo_config

CONFIG = Path(__file__).resolve().parents[2] / "config"
ENV = {"GW_CLIENT_SECRET": "c" * 32, "GW_SESSION_SECRET": "s" * 40}


def test_demo_yaml_matches_demo_command(tmp_path: Path) -> None:
    key_file = tmp_path / "headless.pem"
    key_file.write_bytes(keys.generate_rsa_pem())
    env = {**ENV, "GW_HEADLESS_KEY_FILE": str(key_file)}
    from_file = yaml.safe_load((CONFIG / "demo.yaml").read_text())
    from_code = demo_config(gateway_port=8080, idp_port=8081, upstream_port=8082,
                            client_secret="${GW_CLIENT_SECRET}", session_secret="${GW_SESSION_SECRET}",
                            headless_key_file="${GW_HEADLESS_KEY_FILE}")
    assert load_settings(from_file, env) == load_settings(from_code, env)
    assert [p.flow for p in load_settings(from_code, env).providers] == ["redirect", "headless"]


def test_example_yaml_documents_a_valid_config(tmp_path: Path) -> None:
    text = (CONFIG / "example.yaml").read_text()
    (tmp_path / "example.yaml").write_text(text)
    (tmp_path / "client-key.pem").write_bytes(keys.generate_rsa_pem())
    (tmp_path / "idura-client-key.pem").write_bytes(keys.generate_rsa_pem())
    (tmp_path / "assertion-key.pem").write_bytes(keys.generate_ec_pem())
    settings = load_file(tmp_path / "example.yaml", ENV)
    assert settings.providers[0].client_auth == "private_key_jwt"
    assert settings.providers[1].flow == "headless"
    assert settings.providers[1].headless_authorize_endpoint == "https://example.idura.broker/headless/authorize"
    assert settings.session.secret == "s" * 40
    assert settings.metrics_listen == ("127.0.0.1", 9090)
