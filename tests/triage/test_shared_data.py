"""Quality on the public data (read in place from ../shared/data/triage, never copied).

The headline figures with cross-validation are checked by scripts/quality_gate.sh; these tests
pin what is cheap to check on every run.
"""

from __future__ import annotations

import csv

from app.triage import assess
from app.triage.datasets import DEV_CSV, XSTEST_CSV, raise_csv_field_limit
from app.triage.types import Level


def test_xstest_safe_prompts_rarely_alarm() -> None:
    with XSTEST_CSV.open(newline="", encoding="utf-8") as handle:
        safe = [row["prompt"] for row in csv.DictReader(handle) if row["label"] == "safe"]
    assert len(safe) == 250
    alarms = [text for text in safe if assess(text).level >= Level.high]
    assert len(alarms) / len(safe) <= 0.02, alarms


def test_every_dev_post_is_triaged_with_reasons_for_urgent_calls() -> None:
    raise_csv_field_limit()
    with DEV_CSV.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 710
    for row in rows:
        result = assess(row["text"])
        if result.level >= Level.high:
            assert result.signals, row["id"]
