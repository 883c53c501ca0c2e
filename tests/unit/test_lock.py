"""The lock: uv.lock agrees with pyproject.toml, the requirement files are exactly what uv exports from it,
and every install path (tests, demo, Docker image) installs from those files with hashes required.

uv runs offline against an empty cache: `uv lock --check` then succeeds only when nothing would change,
and `uv export --frozen` reads nothing but uv.lock.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPORTS = {
    "requirements/dev.txt": ["--all-extras", "--all-groups"],
    "requirements/runtime.txt": ["--no-dev"],
    "requirements/build.txt": ["--only-group", "build"],
}


def uv(tmp_path: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "uv"
    if not binary.is_file():
        pytest.fail("uv is missing from the venv: scripts/test.sh installs it from requirements/dev.txt")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env |= {"UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_OFFLINE": "1", "UV_NO_CONFIG": "1"}
    return subprocess.run(
        [str(binary), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def locked_versions() -> dict[str, set[str]]:
    """Name -> versions; a package can be locked at two versions for two Python ranges (a fork)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        versions.setdefault(package["name"], set()).add(package.get("version", ""))
    return versions


def test_lock_is_up_to_date_with_pyproject(tmp_path: Path) -> None:
    result = uv(tmp_path, "lock", "--check")
    assert result.returncode == 0, (
        "uv.lock does not match pyproject.toml; run scripts/lock.sh and commit the result\n" + result.stderr
    )


def test_lock_check_fails_when_pyproject_moves(tmp_path: Path) -> None:
    """The check above can fail: a copy of the project with one range changed is refused."""
    copy = tmp_path / "project"
    copy.mkdir()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    changed = pyproject.replace('"segno>=1.6"', '"segno>=1.6,<1.5"')
    assert changed != pyproject
    (copy / "pyproject.toml").write_text(changed, encoding="utf-8")
    (copy / "uv.lock").write_text((ROOT / "uv.lock").read_text(encoding="utf-8"), encoding="utf-8")
    assert uv(tmp_path, "lock", "--check", cwd=copy).returncode != 0


@pytest.mark.parametrize("path", sorted(EXPORTS))
def test_requirement_file_is_the_export_of_the_lock(tmp_path: Path, path: str) -> None:
    out = tmp_path / "export.txt"
    result = uv(
        tmp_path, "export", "--frozen", "--no-emit-project", "--format", "requirements-txt", "--quiet",
        *EXPORTS[path], "-o", str(out),
    )
    assert result.returncode == 0, result.stderr
    # The first two lines name the command (with our -o path); the pins and hashes must be identical.
    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("#")]

    committed = (ROOT / path).read_text(encoding="utf-8")
    assert body(committed) == body(out.read_text(encoding="utf-8")), f"{path} is stale; run scripts/lock.sh"


@pytest.mark.parametrize("path", sorted(EXPORTS))
def test_every_pin_is_exact_and_hashed(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    entries = re.split(r"\n(?=\S)", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    entries = [entry for entry in entries if entry.strip()]
    assert entries
    versions = locked_versions()
    for entry in entries:
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        assert match, f"not an exact pin: {entry.splitlines()[0]}"
        assert "--hash=sha256:" in entry, f"no hash: {match.group(0)}"
        assert match.group(2) in versions.get(match.group(1).lower().replace("_", "-"), set()), match.group(0)


def test_installed_environment_is_the_lock() -> None:
    """What this suite runs with is what the lock says (scripts/test.sh installs requirements/dev.txt)."""
    from importlib.metadata import distributions

    versions = locked_versions()
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in distributions()}
    for name in ("aiohttp", "cryptography", "python-jose", "redis", "pytest", "mypy", "ruff", "uv"):
        assert installed.get(name) in versions[name], (name, installed.get(name), versions[name])


@pytest.mark.parametrize(
    ("script", "files"),
    [
        ("scripts/test.sh", ["requirements/dev.txt"]),
        ("scripts/demo.sh", ["requirements/runtime.txt", "requirements/build.txt"]),
        ("Dockerfile", ["requirements/build.txt", "requirements/runtime.txt"]),
    ],
)
def test_every_install_path_requires_the_hashes(script: str, files: list[str]) -> None:
    lines = (ROOT / script).read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#")).replace("\\\n", " ")
    commands = [line for line in re.split(r"\n|&&", text) if re.search(r"\bpip\b.*\binstall\b", line)]
    assert commands, f"{script} installs nothing with pip"
    named = [f for line in commands for f in re.findall(r"-r (\S+)", line)]
    assert named == files, (script, named)
    for line in commands:
        words = line.split()
        if "-r" in words:
            assert "--require-hashes" in words and "--no-deps" in words, line
        else:
            # The project itself: no dependency resolution, and the locked setuptools builds it.
            assert "--no-deps" in words, line
