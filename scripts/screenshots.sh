#!/usr/bin/env bash
# Re-takes docs/screenshots/*.png (dashboard, supervisor view, visitor page on a phone, resource
# card, survey) from the browser flow and card/survey tests, on a real server and Postgres like every other test run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/browser-setup.sh
BEACON_SCREENSHOTS_DIR=docs/screenshots .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/browser/test_pages.py -k 'flow or card' "$@"
