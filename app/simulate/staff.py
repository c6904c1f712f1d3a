"""``beacon simulate staff``: the fewest volunteers, hour by hour, that meet a target.

A target reads ``LEVEL STAT OP VALUE``, e.g. ``imminent p95 <= 30s``, ``low p99 <= 10m`` or
``moderate abandoned <= 5%``; several are joined with commas. For a wait target every visitor of
the level counts: one nobody answered counts with the time they were left waiting (until they
gave up, were handed off, or the run stopped), so fewer volunteers cannot pass by losing people,
while someone who closed the window after three seconds does not make a target unreachable.

The search goes forward through the shift. For hour ``h``, with the hours before it settled, it
finds the smallest count that, kept from ``h`` on, meets every target for the visitors arriving
in hour ``h`` — pooled over several seeds, so that one lucky draw does not decide. Waits that
run past the hour are included, which is why later hours are held at the candidate count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.simulate.engine import (
    Arrival,
    Outcome,
    VisitResult,
    VolunteerPlan,
    generate_arrivals,
    simulate,
    staffing_plans,
    volunteer_plans,
)
from app.simulate.policies import POLICIES
from app.simulate.report import percentile
from app.simulate.scenario import LEVEL_NAMES, Scenario

_TARGET = re.compile(
    r"^\s*(?P<level>[a-z]+)\s+(?P<stat>p\d{1,2}(?:\.\d+)?|mean|abandoned)\s*"
    r"(?P<op><=|<)\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|min|h|%)?\s*$"
)
_UNITS = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
# A visit still waiting this long after its hour ended fails a wait target.
_DRAIN_S = 1800.0


class TargetError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    level: int
    stat: str  # "p95", "mean", "abandoned"
    strict: bool  # "<" rather than "<="
    value: float  # seconds, or a share for "abandoned"
    text: str

    def measure(self, visits: Sequence[VisitResult]) -> float | None:
        mine = [v for v in visits if v.arrival.urgency == self.level]
        if not mine:
            return None
        if self.stat == "abandoned":
            return sum(v.outcome is Outcome.abandoned for v in mine) / len(mine)
        waits = [v.wait_s for v in mine]  # to the outcome, whatever it was
        if self.stat == "mean":
            return sum(waits) / len(waits)
        return percentile(waits, float(self.stat[1:]))

    def met(self, visits: Sequence[VisitResult]) -> bool:
        value = self.measure(visits)
        if value is None:
            return True
        return value < self.value if self.strict else value <= self.value


def parse_targets(text: str) -> list[Target]:
    targets: list[Target] = []
    for part in (p for p in text.split(",") if p.strip()):
        match = _TARGET.match(part.lower())
        if not match:
            raise TargetError(
                f"cannot read target {part.strip()!r}: write LEVEL STAT <= VALUE, e.g. "
                "'imminent p95 <= 30s' or 'low abandoned <= 5%'"
            )
        level, stat, unit = match["level"], match["stat"], match["unit"]
        if level not in LEVEL_NAMES:
            raise TargetError(f"unknown level {level!r}; use one of {', '.join(LEVEL_NAMES)}")
        value = float(match["value"])
        if stat == "abandoned":
            if unit not in ("%", None):
                raise TargetError(f"{part.strip()!r}: a share is written in %")
            value = value / 100.0 if unit == "%" else value
        else:
            if unit == "%":
                raise TargetError(f"{part.strip()!r}: a wait is written in s, m or h")
            if stat.startswith("p") and not 0 < float(stat[1:]) < 100:
                raise TargetError(f"{part.strip()!r}: a percentile is between p1 and p99")
            value *= _UNITS[unit]
        targets.append(
            Target(LEVEL_NAMES.index(level), stat, match["op"] == "<", value, part.strip())
        )
    if not targets:
        raise TargetError("give at least one target, e.g. 'imminent p95 <= 30s'")
    return targets


def _spread(plans: list[VolunteerPlan], scenario: Scenario) -> list[VolunteerPlan]:
    """The roster's people interleaved group by group, so that the first ``n`` of them have
    about the roster's mix of languages and capacities, whatever ``n`` the search tries."""
    keyed: list[tuple[float, int, VolunteerPlan]] = []
    start = 0
    for group, shift in enumerate(scenario.volunteers):
        for k in range(shift.count):
            keyed.append(((k + 0.5) / shift.count, group, plans[start + k]))
        start += shift.count
    return [plan for _, _, plan in sorted(keyed, key=lambda item: (item[0], item[1]))]


@dataclass(frozen=True, slots=True)
class StaffPlan:
    per_hour: list[int]
    met: bool  # every target holds over the whole shift with this plan, seeds pooled
    figures: dict[str, list[float | None]]  # target -> whole-shift value per seed, then pooled
    evaluations: int


class _Search:
    def __init__(
        self,
        scenario: Scenario,
        targets: list[Target],
        policy: str,
        seeds: Sequence[int],
    ) -> None:
        self.scenario = scenario
        self.targets = targets
        self.policy = POLICIES[policy]
        self.settings = scenario.beacon_settings()
        self.seeds = list(seeds)
        self.arrivals = {seed: generate_arrivals(scenario, seed) for seed in self.seeds}
        template = [p for p in volunteer_plans(scenario) if p.capacity > 0]
        if not template:
            raise TargetError("the scenario's roster has no volunteer to copy")
        self.template = _spread(template, scenario)
        self.hours = math.ceil(scenario.shift_hours)
        self.evaluations = 0

    def run(self, per_hour: list[int], seed: int, until_h: float | None) -> list[VisitResult]:
        self.evaluations += 1
        scenario = self.scenario
        if until_h is not None:  # only the visitors who matter for this hour: stop early
            drain = max(0.0, until_h - scenario.shift_hours)
            scenario = scenario.model_copy(update={"drain_hours": drain})
        plans = staffing_plans(per_hour, self.template, self.scenario.shift_hours)
        arrivals: list[Arrival] = self.arrivals[seed]
        result = simulate(
            scenario,
            self.policy,
            seed=seed,
            arrivals=arrivals,
            volunteers=plans,
            settings=self.settings,
        )
        return result.visits

    def hour_met(self, per_hour: list[int], hour: int) -> bool:
        pooled: list[VisitResult] = []
        until = hour + 1 + _DRAIN_S / 3600.0
        for seed in self.seeds:
            visits = self.run(per_hour, seed, until)
            pooled.extend(
                v for v in visits if hour * 3600.0 <= v.arrival.at_s < (hour + 1) * 3600.0
            )
        return all(t.met(pooled) for t in self.targets)


def search_staff(
    scenario: Scenario,
    targets: list[Target],
    *,
    policy: str = "beacon",
    replications: int = 3,
    max_per_hour: int = 200,
    min_per_hour: int = 1,
) -> StaffPlan:
    search = _Search(
        scenario, targets, policy, [scenario.seed + i for i in range(max(1, replications))]
    )
    hours = search.hours
    per_hour = [max_per_hour] * hours
    if not _whole_met(search, per_hour):
        return _plan(search, per_hour)  # not even the most the search may use is enough
    previous = min_per_hour
    for hour in range(hours):

        def ok(n: int, hour: int = hour) -> bool:
            return search.hour_met(per_hour[:hour] + [n] * (hours - hour), hour)

        per_hour[hour] = _smallest(ok, previous, min_per_hour, max_per_hour)
        previous = per_hour[hour]
    return _plan(search, per_hour)


def _smallest(ok: Callable[[int], bool], start: int, lowest: int, highest: int) -> int:
    """The smallest n in [lowest, highest] with ok(n), for a monotone ok with ok(highest).

    Gallops from ``start`` (the previous hour's count: staffing changes slowly), then bisects
    between the last failing and the first passing count."""
    start = min(max(start, lowest), highest)
    if ok(start):
        high, low, step = start, lowest - 1, 1
        while high - step >= lowest:
            if not ok(high - step):
                low = high - step
                break
            high -= step
            step *= 2
    else:
        low, step = start, 1
        while True:
            candidate = min(highest, low + step)
            if candidate == highest or ok(candidate):
                high = candidate
                break
            low, step = candidate, step * 2
    while high - low > 1:
        mid = (low + high) // 2
        if ok(mid):
            high = mid
        else:
            low = mid
    return high


def _whole_met(search: _Search, per_hour: list[int]) -> bool:
    pooled = [v for seed in search.seeds for v in search.run(per_hour, seed, None)]
    return all(t.met(pooled) for t in search.targets)


def _plan(search: _Search, per_hour: list[int]) -> StaffPlan:
    """The verdict pools the seeds, as the search does; the figures show each seed too."""
    figures: dict[str, list[float | None]] = {t.text: [] for t in search.targets}
    pooled: list[VisitResult] = []
    for seed in search.seeds:
        visits = search.run(per_hour, seed, None)
        pooled.extend(visits)
        for target in search.targets:
            figures[target.text].append(target.measure(visits))
    met = all(t.met(pooled) for t in search.targets)
    for target in search.targets:
        figures[target.text].append(target.measure(pooled))
    return StaffPlan(per_hour, met, figures, search.evaluations)
