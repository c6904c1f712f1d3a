"""``beacon simulate``: a shift of simulated visitors and volunteers run through Beacon's own
routing and escalation policy, beside FIFO and static-priority baselines (docs/simulation.md).

The core (``engine``) is pure and deterministic for a seed; ``run`` wires a scenario to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.simulate.engine import Arrival, RunResult, generate_arrivals, simulate
from app.simulate.policies import POLICIES
from app.simulate.scenario import Scenario


@dataclass(frozen=True, slots=True)
class Comparison:
    scenario: Scenario
    seed: int
    arrivals: list[Arrival]
    results: list[RunResult]


def compare(
    scenario: Scenario,
    *,
    seed: int | None = None,
    policies: list[str] | None = None,
    urgency_shares: list[float] | None = None,
) -> Comparison:
    """Every policy on the same arrivals (common random numbers), one result each."""
    seed = scenario.seed if seed is None else seed
    arrivals = generate_arrivals(scenario, seed, urgency_shares)
    settings = scenario.beacon_settings()
    results = [
        simulate(scenario, POLICIES[name], seed=seed, arrivals=arrivals, settings=settings)
        for name in (policies or scenario.policies)
    ]
    return Comparison(scenario, seed, arrivals, results)


__all__ = ["Comparison", "compare"]
