"""Scenarios written inline, so each test shows the whole situation it simulates."""

from __future__ import annotations

from app.simulate.engine import Arrival
from app.simulate.scenario import Scenario, parse_scenario

# Volunteers who answer at once and never decline: the policy alone decides who waits.
PROMPT_VOLUNTEERS = """
[offers]
accept_s = 0
decline = 0
no_answer = 0
"""


def scenario(body: str) -> Scenario:
    return parse_scenario(body, source="test scenario")


def arrival(
    index: int,
    at_s: float,
    urgency: int,
    *,
    duration_s: float = 600.0,
    language: str | None = "en",
    patience_s: float = float("inf"),
) -> Arrival:
    return Arrival(index, at_s, urgency, language, duration_s, patience_s)
