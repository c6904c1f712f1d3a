#!/usr/bin/env bash
# Triage quality gate (run by scripts/test.sh). Fails when:
#   - the committed model is not what `beacon triage train` reproduces from its inputs;
#   - cross-validated figures on the C-SSRS Reddit dev set drop below triage-floors.json;
#   - XSTest's safe prompts raise more false alarms (high/imminent) than the floor allows.
# Floors only ever go up. Public data is read in place from ../shared/data/triage.
set -euo pipefail
cd "$(dirname "$0")/.."
data="$(cd .. && pwd)/shared/data/triage"
beacon=.venv/bin/beacon
floors=triage-floors.json

echo "== triage: committed model reproduces"
"$beacon" triage train --check

echo "== triage: C-SSRS dev set, 5-fold cross-validation"
"$beacon" triage eval "$data/cssrs-reddit-dev.csv" --cv 5 --floors "$floors"

echo "== triage: XSTest safe prompts, false alarms"
"$beacon" triage eval "$data/xstest-prompts.csv" --text-column prompt --label-column label \
  --safe-value safe --floors "$floors"
