"""Command line completeness (issue 13 item 7): `config show` with every secret redacted, `jwks` with the
public keys the running gateway serves, --config from $EID_GATEWAY_CONFIG or /etc/eid-gateway/config.yaml,
help text on every option."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import cli, keys
from gateway.cli import main
from gateway.config import load_file
from gateway.runtime import build_runtime

SESSION_SECRET = "session-secret-0123456789abcdef-0123456789"
OLD_SECRET = "old-session-secret-0123456789abcdef-012345"
CLIENT_SECRET = "client-secret-value-4711"
PAIRWISE_SECRET = "pairwise-secret-0123456789abcdef-01234567"
AUDIT_SECRET = "audit-secret-0123456789abcdef-0123456789ab"
REDIS_PASSWORD = "redis-pass-word-0815"
SENTINEL_PASSWORD = "sentinel-pass-word-0816"

FULL = f"""\
public_url: https://app.example.com
providers:
  - name: idp
    issuer: https://idp.example.com
    client_id: gw
    client_secret: ${{GW_CLIENT_SECRET}}
  - name: ftn
    issuer: https://ftn.example.com
    client_id: gw-ftn
    client_auth: private_key_jwt
    private_key_file: client.pem
    encryption_key_file: enc.pem
session:
  secret: {SESSION_SECRET}
  previous_secrets: [{OLD_SECRET}]
  store: redis://gw:{REDIS_PASSWORD}@127.0.0.1:6379/0
pairwise:
  secret: {PAIRWISE_SECRET}
routes:
  - name: app
    match: {{host: app.example.com}}
    upstream: http://127.0.0.1:8082
    headers: {{pairwise_sub: X-Auth-Sub}}
assertion:
  signing_key_file: assertion.pem
  published_key_files: [old-assertion.pem]
metrics: {{listen: "127.0.0.1:9090"}}
audit: {{file: "-", secret: {AUDIT_SECRET}}}
"""
SECRETS = (SESSION_SECRET, OLD_SECRET, CLIENT_SECRET, PAIRWISE_SECRET, REDIS_PASSWORD, AUDIT_SECRET)


@pytest.fixture
def full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GW_CLIENT_SECRET", CLIENT_SECRET)
    (tmp_path / "assertion.pem").write_bytes(keys.generate_ec_pem())
    (tmp_path / "old-assertion.pem").write_bytes(keys.generate_ec_pem())
    (tmp_path / "client.pem").write_bytes(keys.generate_rsa_pem())
    (tmp_path / "enc.pem").write_bytes(keys.generate_rsa_pem())
    path = tmp_path / "gateway.yaml"
    path.write_text(FULL)
    return path


# --- config show -------------------------------------------------------------------------------------


def test_config_show_prints_the_effective_config_with_every_secret_redacted(
    full: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "show", "--config", str(full)]) == 0
    out = capsys.readouterr().out
    for secret in SECRETS:
        assert secret not in out
    assert out.startswith(f"# {full}: the effective configuration (defaults filled in, secrets <redacted>)\n")
    shown = yaml.safe_load(out)
    assert shown["listen"] == "127.0.0.1:8080"  # the default, filled in
    assert shown["metrics"] == {"listen": "127.0.0.1:9090"}
    idp, ftn = shown["providers"]
    assert (idp["name"], idp["client_secret"], idp["scopes"], idp["timeout"]) == ("idp", "<redacted>", ["openid"], 10.0)
    assert ftn["client_secret"] is None and ftn["private_key_file"] == str(full.parent / "client.pem")
    assert shown["session"]["secret"] == "<redacted>"
    assert shown["session"]["previous_secrets"] == ["<redacted>"]
    assert shown["session"]["store"]["url"] == "redis://gw:<redacted>@127.0.0.1:6379/0"
    assert shown["pairwise"]["secret"] == "<redacted>"
    assert shown["audit"]["secret"] == "<redacted>"
    assert shown["rate_limits"]["login_per_client"] == "120/60s"
    assert [r["name"] for r in shown["routes"]] == ["app"]


def test_config_show_redacts_a_sentinel_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        FULL.replace(f"redis://gw:{REDIS_PASSWORD}@127.0.0.1:6379/0",
                     f"redis+sentinel://:{SENTINEL_PASSWORD}@10.0.0.1:26379,10.0.0.2:26379/mymaster/0")
        .replace("${GW_CLIENT_SECRET}", CLIENT_SECRET)
        .replace(
            "    client_auth: private_key_jwt\n    private_key_file: client.pem\n    encryption_key_file: enc.pem\n",
            "    client_secret: x\n",
        )
        .replace("  signing_key_file: assertion.pem\n  published_key_files: [old-assertion.pem]\n", "  ttl: 60s\n")
    )
    assert main(["config", "show", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert SENTINEL_PASSWORD not in out
    store = yaml.safe_load(out)["session"]["store"]
    assert (store["kind"], store["password"], store["service"]) == ("sentinel", "<redacted>", "mymaster")


def test_config_show_refuses_a_bad_file_like_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("listen: 127.0.0.1:70000\n")
    assert main(["config", "show", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "  - listen: port 70000 is out of range; choose a port from 1 to 65535" in captured.err.splitlines()


def test_config_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["config"])
    assert info.value.code == 2
    assert "show" in capsys.readouterr().err


# --- jwks ----------------------------------------------------------------------------------------------


def test_jwks_prints_the_keys_the_gateway_serves(full: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jwks", "--config", str(full)]) == 0
    printed = json.loads(capsys.readouterr().out)
    runtime = build_runtime(load_file(full))
    assert printed["assertion"] == {"keys": list(runtime.published_keys)}  # what /_auth/jwks.json serves
    assert len(printed["assertion"]["keys"]) == 2
    assert set(printed["clients"]) == {"ftn"}  # idp has a client secret, no keys
    ftn = printed["clients"]["ftn"]["keys"]
    assert [k["use"] for k in ftn] == ["sig", "enc"]
    assert ftn[0] == keys.public_jwk(runtime.client_keys["ftn"])
    assert ftn[1] == keys.encryption_public_jwk(runtime.encryption_keys["ftn"][0])
    for jwk in printed["assertion"]["keys"] + ftn:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), "a private part was printed"


def test_jwks_without_an_assertion_key_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "public_url: https://app.example.com\nupstream: http://127.0.0.1:8082\nproviders:\n"
        "  - {name: idp, issuer: 'https://idp.example.com', client_id: gw, client_secret: x}\n"
        f"session: {{secret: {SESSION_SECRET}}}\n"
    )
    assert main(["jwks", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"assertion": {"keys": []}, "clients": {}}
    assert "assertion.signing_key_file is not set" in captured.err


def test_jwks_with_an_unreadable_key_is_a_problem(full: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (full.parent / "client.pem").write_text("not a key")
    assert main(["jwks", "--config", str(full)]) == 2
    assert (
        "  - providers[1].private_key_file: not an unencrypted PEM private key (PKCS#8 or traditional)"
        in capsys.readouterr().err.splitlines()
    )


# --- --config defaults ---------------------------------------------------------------------------------


def test_config_from_the_environment(full: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EID_GATEWAY_CONFIG", str(full))
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == f"{full}: configuration is valid\n"


def test_config_from_the_environment_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EID_GATEWAY_CONFIG", str(tmp_path / "absent.yaml"))
    assert main(["check-config"]) == 2
    assert f"{tmp_path / 'absent.yaml'}: cannot read the config file" in capsys.readouterr().err


def test_config_from_the_default_path(full: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("EID_GATEWAY_CONFIG", raising=False)
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", str(full))
    assert main(["config", "show"]) == 0
    assert capsys.readouterr().out.startswith(f"# {full}: the effective configuration")


def test_the_option_beats_the_environment(full: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EID_GATEWAY_CONFIG", str(tmp_path / "absent.yaml"))
    assert main(["check-config", "--config", str(full)]) == 0


@pytest.mark.parametrize("command", [["run"], ["check-config"], ["config", "show"], ["jwks"]])
def test_no_config_anywhere_names_both_places(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EID_GATEWAY_CONFIG", raising=False)
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", str(tmp_path / "etc" / "config.yaml"))
    with pytest.raises(SystemExit) as info:
        main(command)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert (
        f"no config file: --config is not given, $EID_GATEWAY_CONFIG is not set, and {tmp_path / 'etc' / 'config.yaml'}"
        " does not exist; pass --config FILE or set EID_GATEWAY_CONFIG"
    ) in err


# --- help ------------------------------------------------------------------------------------------------


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, (*path, name))
    return found


PARSERS = _parsers(cli.build_parser())


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=[" ".join(p) or "eid-gateway" for p, _ in PARSERS])
def test_every_option_has_help_text(path: tuple[str, ...], parser: argparse.ArgumentParser,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{' '.join(path)} {choice.dest}: no help"
            continue
        assert action.help and len(action.help) >= 10, f"{' '.join(path)} {action.option_strings}: no help text"

    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for action in parser._actions:
        for option in action.option_strings:
            assert option in out


def test_config_help_names_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default: $EID_GATEWAY_CONFIG if set, else /etc/eid-gateway/config.yaml" in out


def test_the_demo_refuses_a_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--gateway-port", "70000"])
    assert info.value.code == 2
    assert "must be a port number from 1 to 65535" in capsys.readouterr().err
