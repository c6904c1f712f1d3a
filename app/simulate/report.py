"""Figures from simulated runs: per urgency level and policy, as a table and as JSON.

``wait`` is from the first message to a volunteer's accept, over the visitors a volunteer
answered; those who left first (abandoned), went to a partner (handed off) or were still
waiting when the simulation stopped (unserved) are counted as shares beside it, so a policy
cannot look fast by losing people.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.simulate.engine import Outcome, RunResult, VisitResult
from app.simulate.scenario import LEVEL_NAMES

QUANTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between order statistics (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class LevelFigures:
    level: str
    arrivals: int
    answered: int
    wait_mean_s: float | None
    wait_s: dict[int, float | None]  # quantile -> seconds
    abandoned: float
    handed_off: float
    unserved: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "arrivals": self.arrivals,
            "answered": self.answered,
            "wait_mean_s": _round(self.wait_mean_s),
            **{f"wait_p{q}_s": _round(v) for q, v in self.wait_s.items()},
            "abandoned": round(self.abandoned, 4),
            "handed_off": round(self.handed_off, 4),
            "unserved": round(self.unserved, 4),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def level_figures(level: int, visits: Sequence[VisitResult]) -> LevelFigures:
    mine = [v for v in visits if v.arrival.urgency == level]
    waits = [v.wait_s for v in mine if v.outcome is Outcome.answered]
    n = len(mine)

    def share(outcome: Outcome) -> float:
        return sum(v.outcome is outcome for v in mine) / n if n else 0.0

    return LevelFigures(
        level=LEVEL_NAMES[level],
        arrivals=n,
        answered=len(waits),
        wait_mean_s=sum(waits) / len(waits) if waits else None,
        wait_s={q: percentile(waits, q) for q in QUANTILES},
        abandoned=share(Outcome.abandoned),
        handed_off=share(Outcome.handed_off),
        unserved=share(Outcome.unserved),
    )


def run_figures(result: RunResult) -> dict[str, Any]:
    return {
        "policy": result.policy,
        "utilisation": round(result.utilisation, 4),
        "busy_share": round(result.busy_share, 4),
        "volunteer_hours": round(result.volunteer_hours, 2),
        "arrivals": len(result.visits),
        "levels": {
            LEVEL_NAMES[level]: level_figures(level, result.visits).as_dict()
            for level in range(len(LEVEL_NAMES))
        },
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


def table(results: Sequence[RunResult], labels: dict[str, str]) -> str:
    """A Markdown table: one row per policy and level, most urgent first."""
    lines = [
        "| policy | level | arrivals | wait p50 | wait p95 | wait p99 | abandoned | handed off "
        "| utilisation |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for level in reversed(range(len(LEVEL_NAMES))):
            f = level_figures(level, result.visits)
            lines.append(
                f"| {labels.get(result.policy, result.policy)} | {f.level} | {f.arrivals} "
                f"| {_duration(f.wait_s[50])} | {_duration(f.wait_s[95])} "
                f"| {_duration(f.wait_s[99])} | {_pct(f.abandoned)} | {_pct(f.handed_off)} "
                f"| {_pct(result.utilisation)} |"
            )
    return "\n".join(lines)


def seeds_table(runs: Sequence[Sequence[RunResult]], labels: dict[str, str]) -> str:
    """Several seeds of the same comparison: per policy and level, the p95 wait's median and
    range over the seeds, and the mean shares abandoned and handed off."""
    lines = [
        f"| policy | level | wait p95, median of {len(runs)} seeds | p95 range "
        "| abandoned | handed off | utilisation |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for column in range(len(runs[0])):
        results = [run[column] for run in runs]
        name = results[0].policy
        utilisation = sum(r.utilisation for r in results) / len(results)
        for level in reversed(range(len(LEVEL_NAMES))):
            figures = [level_figures(level, r.visits) for r in results]
            p95 = [f.wait_s[95] for f in figures if f.wait_s[95] is not None]
            low, high = (min(p95), max(p95)) if p95 else (None, None)
            lines.append(
                f"| {labels.get(name, name)} | {LEVEL_NAMES[level]} "
                f"| {_duration(percentile(p95, 50))} | {_duration(low)} - {_duration(high)} "
                f"| {_pct(sum(f.abandoned for f in figures) / len(figures))} "
                f"| {_pct(sum(f.handed_off for f in figures) / len(figures))} "
                f"| {_pct(utilisation)} |"
            )
    return "\n".join(lines)
