#!/usr/bin/env bash
# Regenerates the lock: uv.lock (every dependency of every extra and group, for every platform, with
# hashes) and the requirement files exported from it, which pip installs with --require-hashes:
#   requirements/dev.txt      runtime + test + lint + docs extras + build and lock groups (scripts/test.sh)
#   requirements/runtime.txt  what `pip install eid-gateway` needs to run (the Dockerfile, scripts/demo.sh)
#   requirements/build.txt    the build backend, setuptools (the Dockerfile, scripts/demo.sh)
# Usage: scripts/lock.sh            re-resolve within pyproject.toml's ranges, keeping locked versions
#        scripts/lock.sh --upgrade  move every package to its newest release (run scripts/test-latest.sh first)
# tests/unit/test_lock.py fails when pyproject.toml, uv.lock and the exports disagree.
set -euo pipefail
cd "$(dirname "$0")/.."

uv=""
if [ -x .venv/bin/uv ]; then
  uv=.venv/bin/uv
elif command -v uv >/dev/null 2>&1; then
  uv=uv
else
  # First lock on a machine without uv: the version pinned in uv.lock, into a throw-away venv.
  version=$(python3 -c 'import tomllib; print(next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "uv"))')
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  python3 -m venv "$tmp/venv" && "$tmp/venv/bin/pip" install -q "uv==$version"
  uv="$tmp/venv/bin/uv"
fi

"$uv" lock "$@"
export_args=(--frozen --no-emit-project --format requirements-txt --quiet)
"$uv" export "${export_args[@]}" --all-extras --all-groups -o requirements/dev.txt
"$uv" export "${export_args[@]}" --no-dev -o requirements/runtime.txt
"$uv" export "${export_args[@]}" --only-group build -o requirements/build.txt
echo "lock written: uv.lock, requirements/dev.txt, requirements/runtime.txt, requirements/build.txt"
