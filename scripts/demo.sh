#!/usr/bin/env bash
# Runs the demo on a fresh machine: installs the runtime dependencies at locked versions
# (requirements/runtime.txt and requirements/build.txt, exported from uv.lock, hashes required) and the
# project into .venv, then
# starts the gateway on :8080, the built-in development IdP on :8081 and an echo application on :8082.
# Usage: scripts/demo.sh [eid-gateway demo options, e.g. --gateway-port 9080 --idp-port 9081 --upstream-port 9082]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv" >&2
  python3 -m venv .venv
fi
echo "== installing the gateway and its runtime dependencies from the lock (requirements/runtime.txt)" >&2
.venv/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps \
  -r requirements/runtime.txt -r requirements/build.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
exec .venv/bin/eid-gateway demo "$@"
