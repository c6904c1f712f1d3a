"""How long `beacon simulate` takes: a 12-hour shift of ~500 arrivals (the `small` scenario) and
the 5,000-arrival `evening` scenario, every policy in one run, in this process (no start-up).

    .venv/bin/python -m bench.simulate_bench [--repeats 5]

Prints one line per scenario and a `SUMMARY {...}` line; it asserts nothing (house rule).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from app.simulate import compare
from app.simulate.scenario import load_scenario


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    summary: dict[str, object] = {}
    for name in ("small", "evening"):
        scenario = load_scenario(name)
        times: list[float] = []
        arrivals = 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            comparison = compare(scenario)
            times.append(time.perf_counter() - started)
            arrivals = len(comparison.arrivals)
        per_policy = statistics.median(times) / len(scenario.policies)
        print(
            f"{name}: {arrivals} arrivals over {scenario.shift_hours:g} h, "
            f"{len(scenario.policies)} policies: median {statistics.median(times):.3f} s, "
            f"max {max(times):.3f} s ({per_policy:.3f} s per policy)"
        )
        summary[name] = {
            "arrivals": arrivals,
            "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3),
        }
    print("SUMMARY " + json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
