"""Every configuration shown in the docs is one the gateway accepts: `eid-gateway check-config` passes on
each block marked `<!-- config -->` (a whole file) and on each `<!-- config-fragment -->` merged into a
minimal valid file, with the environment variables and key files the block names supplied."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import keys
from tests.docs.pages import Block, blocks, markdown_files

ALL = [b for path in markdown_files() for b in blocks(path)]
CONFIGS = [b for b in ALL if b.mark in ("config", "config-fragment")]

#: What a fragment is merged into: the smallest file the loader accepts.
BASE: dict[str, Any] = {
    "public_url": "https://app.example.com",
    "upstream": "http://127.0.0.1:8082",
    "providers": [{"name": "base", "issuer": "https://login.example.com", "client_id": "c", "client_secret": "s" * 32}],
    "session": {"secret": "x" * 40},
}
_KEY_FILE_KEYS = {
    "private_key_file": "rsa",
    "signing_key_file": "ec",
    "published_key_files": "ec",
    "token_file": "token",
}


def _merge(base: Any, fragment: Any) -> Any:
    """Mappings merge key by key; anything else (lists included) is replaced by the fragment."""
    if isinstance(base, dict) and isinstance(fragment, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in fragment.items()}}
    return fragment


def _key_files(node: Any, kind: str | None = None) -> list[tuple[str, str]]:
    """(path, rsa|ec) for every key file the document names, except ${VAR}s (those come from the env)."""
    if isinstance(node, dict):
        return [f for k, v in node.items() for f in _key_files(v, _KEY_FILE_KEYS.get(k, kind))]
    if isinstance(node, list):
        return [f for v in node for f in _key_files(v, kind)]
    if isinstance(node, str) and kind and not node.startswith("${"):
        return [(node, kind)]
    return []


def _write_key(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "token":
        path.write_text(secrets.token_urlsafe(32) + "\n")
        return
    path.write_bytes(keys.generate_rsa_pem() if kind == "rsa" else keys.generate_ec_pem())


def check_config(text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """Lay the file out with its keys and environment, and run `python -m gateway check-config` on it."""
    document = yaml.safe_load(text)
    for name, kind in _key_files(document):
        _write_key(directory / name, kind)
    env = {"PATH": "/usr/bin:/bin"}
    for var in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)):
        if var.endswith("_FILE"):
            _write_key(directory / f"{var.lower()}.pem", "rsa")
            env[var] = str(directory / f"{var.lower()}.pem")
        else:
            env[var] = secrets.token_urlsafe(36)
    (directory / "config.yaml").write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", "config.yaml"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _as_file(block: Block) -> str:
    if block.mark == "config":
        return block.body
    fragment = yaml.safe_load(block.body)
    assert isinstance(fragment, dict), f"{block.where}: a fragment is a mapping of top-level keys"
    return yaml.safe_dump(_merge(BASE, fragment), sort_keys=False)


@pytest.mark.parametrize("block", CONFIGS, ids=[b.where for b in CONFIGS])
def test_config_block_passes_check_config(block: Block, tmp_path: Path) -> None:
    assert block.info == "yaml", f"{block.where}: a config block is a ```yaml block"
    result = check_config(_as_file(block), tmp_path)
    assert result.returncode == 0, f"{block.where}:\n{result.stderr}"
    assert "configuration is valid" in result.stdout


def test_every_whole_config_block_is_marked() -> None:
    """A YAML block that looks like a gateway file (public_url + providers) cannot escape the check."""
    unmarked = [
        b.where
        for b in ALL
        if b.info == "yaml"
        and b.mark != "config"
        and re.search(r"^public_url:", b.body, re.M)
        and re.search(r"^providers:", b.body, re.M)
    ]
    assert unmarked == []


def test_the_docs_show_configs_for_every_provider_flow() -> None:
    """The providers page has a checked file for each flow; the reference has fragments."""
    flows = {m for b in CONFIGS for m in re.findall(r"^\s+flow: (\w+)", b.body, re.M)}
    assert flows >= {"redirect", "headless", "ciba"}
    assert sum(b.mark == "config-fragment" for b in CONFIGS) >= 4


def test_the_check_fails_on_a_bad_config(tmp_path: Path) -> None:
    """The harness itself: a config with a wrong key is refused, so a pass above means something."""
    text = yaml.safe_dump(_merge(BASE, {"session": {"lifetim": "8h"}}))
    result = check_config(text, tmp_path)
    assert result.returncode == 2
    assert "session.lifetim: unknown key; did you mean 'lifetime'?" in result.stderr
