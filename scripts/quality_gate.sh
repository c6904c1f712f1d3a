#!/usr/bin/env bash
# Triage quality gate (run by scripts/test.sh). Fails when:
#   - the committed model is not what `beacon triage train` reproduces from the repository (the
#     same data and recipe, equal up to the floating-point differences between CPU families);
#   - the sealed chat test splits (test.jsonl: writers s1-s2; test-2.jsonl: s3), the C-SSRS posts (5-fold CV, each fold
#     re-trained without its posts) or XSTest's harmless prompts fall below triage-floors.json.
# Floors only ever go up (once lowered by 0.002, for a figure that re-trains and measured one post
# apart on another CPU family: docs/triage.md, "Limits"). Everything is read from data/triage
# (vendored; see its README).
set -euo pipefail
cd "$(dirname "$0")/.."
beacon=.venv/bin/beacon
floors=triage-floors.json
data=data/triage
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

echo "== triage: committed model reproduces"
"$beacon" triage train --check

echo "== triage: sealed chat test splits (reported only; never used to choose anything)"
"$beacon" triage eval "$data/chat/test.jsonl" --floors "$floors"
"$beacon" triage eval "$data/chat/test-2.jsonl" --floors "$floors"

echo "== triage: C-SSRS Reddit posts, 5-fold cross-validation"
"$beacon" triage eval "$data/public/cssrs-reddit-dev.csv" --cv 5 --floors "$floors"

echo "== triage: XSTest harmless prompts, false alarms"
"$beacon" triage eval "$data/public/xstest-prompts.csv" --text-column prompt --label-column label \
  --safe-value safe --floors "$floors"
