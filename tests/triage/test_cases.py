"""Beacon's own case table (app/triage/data/cases.csv): every row must pass, exactly."""

from __future__ import annotations

import pytest

from app.triage import assess
from app.triage.datasets import Case, load_cases
from app.triage.types import Level

CASES = load_cases()


def _case_id(case: Case) -> str:
    context = f" <- {' | '.join(case.context)}" if case.context else ""
    return f"{case.level.name}: {case.text}{context}"[:90]


def test_table_is_large_and_covers_every_level() -> None:
    assert len(CASES) >= 150
    assert {case.level for case in CASES} == set(Level)
    assert sum(1 for case in CASES if case.context) >= 10


def test_table_covers_every_category() -> None:
    wanted = {signal for case in CASES for signal in case.signals}
    for category in (
        "negated:suicidal",
        "idiom:killing_me",
        "idiom:dead_laughing",
        "idiom:homonym",
        "ideation:active",
        "ideation:passive",
        "third_party",
        "retraction",
        "method:overdose",
        "emoji:pill",
        "method:poison",
        "method:jumping",
        "method:seeking",
        "harm_others",
        "abuse:ongoing",
        "abuse:past",
        "danger:now",
        "medical:emergency",
        "lang:unsupported",
        "behavior:attempt",
        "behavior:attempt_now",
        "behavior:preparatory",
        "farewell",
        "time:tonight",
        "means:access",
        "context",
    ):
        assert category in wanted, category


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_case(case: Case) -> None:
    result = assess(case.text, case.context)
    assert result.level == case.level, result.signals
    for signal in case.signals:
        assert signal in result.signals, (signal, result.signals)
    for signal in case.absent:
        assert signal not in result.signals, (signal, result.signals)
