#!/usr/bin/env bash
# Builds the documentation site (MkDocs + Material, mkdocs.yml) into site/, warnings as errors.
# Usage: scripts/docs.sh [mkdocs build options, e.g. --site-dir /tmp/site]
# mkdocs comes from the lock (requirements/dev.txt, installed into .venv by scripts/test.sh); MKDOCS=path
# picks another one. No --quiet: it hides the warnings, and then --strict no longer fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_MKDOCS_2_WARNING=1  # the theme's end-of-life banner, not a build warning
exec "${MKDOCS:-.venv/bin/mkdocs}" build --strict "$@"
