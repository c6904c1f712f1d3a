"""The urgency mix from first messages, read by the real triage engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.simulate import compare
from app.simulate.scenario import ScenarioError, load_scenario
from app.simulate.triage_mix import urgency_shares
from app.triage.types import Level

FIRST_MESSAGES = [
    "hi, is anyone there?",
    "my exam is killing me lol",
    "I took 30 pills an hour ago",
    "I have the rope ready and tonight is the night",
]


def _csv(tmp_path: Path, column: str = "text") -> Path:
    path = tmp_path / "first.csv"
    rows = "\n".join(f'"{text}"' for text in FIRST_MESSAGES)
    path.write_text(f"{column}\n{rows}\n", encoding="utf-8")
    return path


def test_the_engine_sets_the_mix_and_the_mix_drives_the_arrivals(tmp_path: Path) -> None:
    shares = urgency_shares(_csv(tmp_path))
    assert sum(shares) == pytest.approx(1.0)
    # Two of the four are imminent by the SPEC's own examples; the greeting and the idiom not.
    assert shares[Level.imminent] == pytest.approx(0.5)
    assert shares[Level.high] + shares[Level.moderate] == 0.0
    comparison = compare(load_scenario("small"), urgency_shares=shares, policies=["beacon"])
    levels = {a.urgency for a in comparison.arrivals}
    assert Level.imminent in levels
    assert Level.moderate not in levels


def test_a_csv_without_the_column_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no column 'text'"):
        urgency_shares(_csv(tmp_path, column="message"))
    assert urgency_shares(_csv(tmp_path, column="message"), "message")[Level.imminent] > 0
