"""Command line: check-config reports every problem with its key path; keygen makes keys that load."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import __version__, keys
from gateway.cli import main

SECRET = "0123456789abcdef0123456789abcdef-session"

GOOD = f"""\
public_url: https://app.example.com
upstream: http://127.0.0.1:8082
providers:
  - name: idp
    issuer: https://idp.example.com
    client_id: gw
    client_secret: client-secret
session:
  secret: {SECRET}
"""

BAD = """\
public_url: http://app.example.com
upstream: http://127.0.0.1:8082
providers:
  - name: idp
    issuer: https://idp.example.com
    client_id: gw
    client_auth: client_secret_jwt
session:
  secret: too-short
headers: {ssn: X_Auth_Ssn}
metrics: {listen: "9090"}
"""
BAD_PROBLEMS = [
    "public_url: must use https (http is accepted for loopback hosts only, for development)",
    "providers[0].client_auth: must be one of client_secret_basic, client_secret_post, private_key_jwt",
    "providers[0].client_secret: is required for client_auth client_secret_basic",
    "session.secret: must be at least 32 characters of random data; generate one with: eid-gateway keygen",
    "headers.ssn: must be a header name of letters, digits and '-', e.g. X-Auth-Ssn",
    "metrics.listen: must be host:port, e.g. 127.0.0.1:9090 (a separate, internal port)",
]
PEM_BLOCK = re.compile(r"-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n")
SECRET_LINE = re.compile(r"^session secret \(for session\.secret\): ([A-Za-z0-9_-]{43})$", re.MULTILINE)


def write(tmp_path: Path, text: str, name: str = "gw.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- check-config ------------------------------------------------------------------------------------


def test_check_config_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    assert main(["check-config", "--config", str(path)]) == 0
    out, _ = capsys.readouterr()
    assert out == f"{path}: configuration is valid\n"


def test_check_config_good_file_with_key_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "assertion.pem").write_bytes(keys.generate_ec_pem())
    (tmp_path / "client.pem").write_bytes(keys.generate_rsa_pem())
    text = GOOD.replace(
        "    client_secret: client-secret\n", "    client_auth: private_key_jwt\n    private_key_file: client.pem\n"
    )
    path = write(tmp_path, text + "assertion:\n  signing_key_file: assertion.pem\n")
    assert main(["check-config", "--config", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: configuration is valid\n"


def test_check_config_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BAD)
    assert main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"eid-gateway: {path}: 6 problem(s) in the configuration:"
    assert sorted(lines[1:]) == sorted(f"  - {p}" for p in BAD_PROBLEMS)


def test_check_config_not_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "public_url: [unclosed\n  - x: {\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not valid YAML" in err
    assert "Traceback" not in err


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.yaml"
    assert main(["check-config", "--config", str(path)]) == 2
    assert f"{path}: cannot read the config file" in capsys.readouterr().err


def test_check_config_missing_signing_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD + "assertion:\n  signing_key_file: absent.pem\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        f"  - assertion.signing_key_file: file {tmp_path / 'absent.pem'} does not exist; "
        "create one with: eid-gateway keygen --out absent.pem"
    ) in err.splitlines()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key\n", "assertion.signing_key_file: not an unencrypted PEM private key (PKCS#8 or traditional)"),
        (keys.generate_rsa_pem(1024), "assertion.signing_key_file: RSA keys must have at least 2048 bits"),
    ],
)
def test_check_config_reads_the_key_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    """Key files that exist but do not load are configuration problems too (exit 2, not a traceback)."""
    (tmp_path / "assertion.pem").write_bytes(content)
    path = write(tmp_path, GOOD + "assertion:\n  signing_key_file: assertion.pem\n")
    assert main(["check-config", "--config", str(path)]) == 2
    assert f"  - {message}" in capsys.readouterr().err.splitlines()


def test_check_config_bad_client_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "client.pem").write_text("garbage")
    text = GOOD.replace(
        "    client_secret: client-secret\n", "    client_auth: private_key_jwt\n    private_key_file: client.pem\n"
    )
    path = write(tmp_path, text)
    assert main(["check-config", "--config", str(path)]) == 2
    assert (
        "  - providers[0].private_key_file: not an unencrypted PEM private key (PKCS#8 or traditional)"
        in capsys.readouterr().err.splitlines()
    )


def test_check_config_requires_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check-config"])
    assert info.value.code == 2
    assert "--config" in capsys.readouterr().err


# --- keygen ------------------------------------------------------------------------------------------


def test_keygen_prints_a_loadable_ec_key_and_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    out = capsys.readouterr().out
    pem = PEM_BLOCK.search(out)
    assert pem is not None and out.startswith(pem.group(0))
    signing = keys.signing_key_from_pem(pem.group(0).encode())
    assert (signing.alg, signing.public.crv) == ("ES256", "P-256")
    secret = SECRET_LINE.search(out)
    assert secret is not None
    assert len(secret.group(1)) >= 32


def test_keygen_rsa(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--rsa"]) == 0
    pem = PEM_BLOCK.search(capsys.readouterr().out)
    assert pem is not None
    assert keys.signing_key_from_pem(pem.group(0).encode()).alg == "RS256"


def test_keygen_twice_gives_different_keys(capsys: pytest.CaptureFixture[str]) -> None:
    main(["keygen"])
    first = capsys.readouterr().out
    main(["keygen"])
    second = capsys.readouterr().out
    assert PEM_BLOCK.search(first).group(0) != PEM_BLOCK.search(second).group(0)  # type: ignore[union-attr]
    assert SECRET_LINE.search(first).group(1) != SECRET_LINE.search(second).group(1)  # type: ignore[union-attr]


def test_keygen_out_writes_a_private_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "assertion.pem"
    assert main(["keygen", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    signing = keys.load_signing_key(out)
    stdout = capsys.readouterr().out
    assert "PRIVATE KEY" not in stdout
    assert f"wrote EC P-256 private key to {out} (kid {signing.kid})\n" in stdout
    assert SECRET_LINE.search(stdout) is not None


def test_keygen_out_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "assertion.pem"
    out.write_bytes(b"precious")
    assert main(["keygen", "--out", str(out)]) == 1
    assert out.read_bytes() == b"precious"
    assert f"{out} exists; pass --force to overwrite it" in capsys.readouterr().err


def test_keygen_out_force_overwrites_and_leaves_a_private_file(tmp_path: Path) -> None:
    out = tmp_path / "assertion.pem"
    out.write_bytes(b"old")
    out.chmod(0o644)
    assert main(["keygen", "--out", str(out), "--force"]) == 0
    keys.load_signing_key(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_keygen_output_works_in_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--out", str(tmp_path / "assertion.pem")]) == 0
    secret = SECRET_LINE.search(capsys.readouterr().out)
    assert secret is not None
    text = GOOD.replace(SECRET, secret.group(1)) + "assertion:\n  signing_key_file: assertion.pem\n"
    path = write(tmp_path, text)
    assert main(["check-config", "--config", str(path)]) == 0


# --- version and the real entry points ---------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"eid-gateway {__version__}\n"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage: eid-gateway" in capsys.readouterr().err


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_console_script_check_config_bad_file(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "eid-gateway"
    assert script.exists()
    path = write(tmp_path, BAD, "bad.yaml")
    result = _run(str(script), "check-config", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    for problem in BAD_PROBLEMS:
        assert f"  - {problem}" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


def test_console_script_check_config_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = _run(str(Path(sys.executable).parent / "eid-gateway"), "check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: configuration is valid\n"


def test_python_m_gateway_version() -> None:
    result = _run(sys.executable, "-m", "gateway", "--version")
    assert result.returncode == 0
    assert result.stdout == f"eid-gateway {__version__}\n"
