#!/usr/bin/env bash
# The suite against the newest releases of every Python dependency and tool (within pyproject.toml's
# ranges), in a throw-away venv: what `pip install eid-gateway` users get today, and what the next lock
# bump will bring. Not the gate (scripts/test.sh is, with the lock); run it before `scripts/lock.sh
# --upgrade`, and fix what it finds first.
# Prints every package whose newest release differs from the lock, then runs lint, types and tests.
# The lock's own tests (tests/unit/test_lock.py) are left out: they check that the venv *is* the lock.
# Usage: scripts/test-latest.sh [pytest args...]
# Needs what scripts/test.sh installs outside Python (Debian packages, tests/op/node_modules): run that once.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$(mktemp -d /tmp/eid-gateway-latest.XXXXXX)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
echo "== installing the newest releases into $venv"
"$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip setuptools
"$venv/bin/pip" install -q --disable-pip-version-check --upgrade -e '.[test,lint,docs]' uv

echo "== packages that moved from the lock (name: locked -> newest)"
"$venv/bin/python" - <<'PY'
import importlib.metadata as metadata
import tomllib

with open("uv.lock", "rb") as f:
    locked: dict[str, set[str]] = {}
    for package in tomllib.load(f)["package"]:
        locked.setdefault(package["name"], set()).add(package.get("version", ""))
installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}
moved = [
    f"  {name}: {' / '.join(sorted(locked.get(name, {'(not locked)'})))} -> {version}"
    for name, version in sorted(installed.items())
    if name not in ("eid-gateway", "pip") and version not in locked.get(name, set())
]
print("\n".join(moved) if moved else "  nothing: the lock is at the newest releases")
PY

[ -d tests/op/node_modules ] || npm ci --prefix tests/op --no-audit --no-fund --loglevel=error

echo "== lint and types (newest ruff and mypy)"
"$venv/bin/ruff" check gateway tests
"$venv/bin/mypy" gateway

echo "== tests (newest releases)"
"$venv/bin/pytest" -q -p no:cacheprovider --ignore=tests/unit/test_lock.py "$@"
