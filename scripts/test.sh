#!/usr/bin/env bash
# Sets up and runs everything CI checks: lint, types, the test suite (browser tests included),
# the triage quality gate.
# Postgres: BEACON_TEST_DATABASE_URL, else 127.0.0.1:5432, else a throwaway cluster (tests/pg.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Chromium and playwright-core for tests/browser (installed when missing; says what is missing).
bash scripts/browser-setup.sh
.venv/bin/ruff check app tests bench migrations
.venv/bin/ruff format --check app tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
if [ -f scripts/quality_gate.sh ]; then
  bash scripts/quality_gate.sh
fi
