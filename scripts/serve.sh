#!/usr/bin/env bash
# Sets up and runs the service on the embedded default (SQLite file ./beacon.db).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/beacon serve "$@"
