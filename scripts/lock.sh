#!/usr/bin/env bash
# Re-resolves requirements.lock from pyproject.toml (service + dev tools) and the build backend,
# with hashes. Run it deliberately to upgrade dependencies, review the diff, run the test
# command, and commit the lock on its own ("deps: upgrade ..."). `--upgrade-package NAME` (uv's
# option) upgrades one package only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install --quiet "uv==0.13.9"
.venv/bin/uv pip compile pyproject.toml scripts/build-requirements.in --extra dev \
  --generate-hashes --python-version 3.11 --no-header -o requirements.lock "$@"
