"""``beacon simulate ...``: run a shift through the policies, or search the staffing for targets."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.simulate import compare
from app.simulate.policies import POLICIES
from app.simulate.report import run_figures, seeds_table, table
from app.simulate.scenario import (
    POLICY_SETTINGS,
    Scenario,
    ScenarioError,
    load_scenario,
    shipped_scenarios,
)
from app.simulate.staff import TargetError, parse_targets, search_staff

DEFAULT_SCENARIO = "evening"

_USAGE = f"""usage: beacon simulate [run] [SCENARIO] [--seed N] [--policies fifo,static,beacon]
                       [--json FILE|-] [--plots DIR] [--urgency-csv FILE [--text-column text]]
                       [--seeds N]
       beacon simulate staff [SCENARIO] --target "imminent p95 <= 30s" [--policy beacon]
                       [--replications 3] [--max-per-hour 200] [--json FILE|-]
       beacon simulate scenarios

  run        one shift, every policy on the same arrivals: a table of waits per level
  staff      the fewest volunteers per hour that meet the target(s), comma-separated
  scenarios  the shipped scenarios (SCENARIO is one of them or a TOML file; default
             {DEFAULT_SCENARIO!r}); docs/simulation.md describes the file"""


def _labels() -> dict[str, str]:
    return {name: policy.label for name, policy in POLICIES.items()}


def _write_json(target: str, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text, encoding="utf-8")


def _scenario_summary(scenario: Scenario, seed: int) -> dict[str, Any]:
    settings = scenario.beacon_settings()
    return {
        "name": scenario.name,
        "seed": seed,
        "shift_hours": scenario.shift_hours,
        "volunteers": sum(s.count for s in scenario.volunteers),
        "settings": {name: getattr(settings, name) for name in POLICY_SETTINGS},
    }


def _run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="beacon simulate run")
    parser.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--policies", default=None, help="comma-separated: fifo,static,beacon")
    parser.add_argument("--json", dest="json_out", default=None, help="write figures (- stdout)")
    parser.add_argument("--plots", type=Path, default=None, help="folder for PNG figures")
    parser.add_argument("--urgency-csv", type=Path, default=None)
    parser.add_argument("--text-column", default="text")
    parser.add_argument(
        "--seeds", type=int, default=1, help="also summarise this many seeds (seed, seed+1, ...)"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise ScenarioError("--seeds must be at least 1")
    scenario = load_scenario(args.scenario)
    policies = scenario.policies
    if args.policies:
        policies = [p.strip() for p in args.policies.split(",") if p.strip()]
        unknown = [p for p in policies if p not in POLICIES]
        if unknown or not policies:
            raise ScenarioError(f"--policies: choose from {', '.join(POLICIES)}")
    shares = None
    csv_path, column = args.urgency_csv, args.text_column
    if csv_path is None and scenario.urgency.triage_csv is not None:
        csv_path, column = scenario.urgency.triage_csv, scenario.urgency.text_column
    if csv_path is not None:
        from app.simulate.triage_mix import urgency_shares

        shares = urgency_shares(csv_path, column)
    started = time.perf_counter()
    comparison = compare(scenario, seed=args.seed, policies=policies, urgency_shares=shares)
    elapsed = time.perf_counter() - started
    seed = comparison.seed
    human = sys.stderr if args.json_out == "-" else sys.stdout
    print(
        f"scenario {scenario.name}: {len(comparison.arrivals)} arrivals over "
        f"{scenario.shift_hours:g} h, {sum(s.count for s in scenario.volunteers)} volunteers, "
        f"seed {seed}; {len(policies)} policies simulated in {elapsed:.2f} s",
        file=human,
    )
    print(table(comparison.results, _labels()), file=human)
    if args.seeds > 1:
        runs = [comparison.results] + [
            compare(scenario, seed=seed + i, policies=policies, urgency_shares=shares).results
            for i in range(1, args.seeds)
        ]
        print(f"\nover seeds {seed}-{seed + args.seeds - 1}:", file=human)
        print(seeds_table(runs, _labels()), file=human)
    if args.json_out:
        summary = _scenario_summary(scenario, seed)
        if shares is not None:
            summary["urgency_shares_from_csv"] = [round(s, 4) for s in shares]
        _write_json(
            args.json_out,
            {"scenario": summary, "policies": [run_figures(r) for r in comparison.results]},
        )
    if args.plots:
        from app.simulate.plots import PlotsUnavailable, draw

        try:
            paths = draw(
                comparison.results,
                _labels(),
                args.plots,
                name=scenario.name,
                shift_hours=scenario.shift_hours,
            )
        except PlotsUnavailable as exc:
            print(f"beacon simulate: {exc}", file=sys.stderr)
            return 2
        for path in paths:
            print(f"wrote {path}", file=human)
    return 0


def _shown(value: float | None) -> str:
    if value is None:
        return "-"
    return "never answered" if math.isinf(value) else f"{value:.3g}"


def _json_value(value: float | None) -> float | str | None:
    # JSON has no infinity: a wait target some visitor never met reads "never".
    if value is not None and math.isinf(value):
        return "never"
    return None if value is None else round(value, 4)


def _staff(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="beacon simulate staff")
    parser.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO)
    parser.add_argument("--target", required=True, help='e.g. "imminent p95 <= 30s"')
    parser.add_argument("--policy", default="beacon", choices=sorted(POLICIES))
    parser.add_argument("--replications", type=int, default=3, help="seeds pooled per hour")
    parser.add_argument("--max-per-hour", type=int, default=200)
    parser.add_argument("--min-per-hour", type=int, default=1)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    if args.replications < 1 or args.min_per_hour < 0 or args.max_per_hour < args.min_per_hour:
        raise TargetError("need --replications >= 1 and 0 <= --min-per-hour <= --max-per-hour")
    targets = parse_targets(args.target)
    scenario = load_scenario(args.scenario)
    started = time.perf_counter()
    plan = search_staff(
        scenario,
        targets,
        policy=args.policy,
        replications=args.replications,
        max_per_hour=args.max_per_hour,
        min_per_hour=args.min_per_hour,
    )
    elapsed = time.perf_counter() - started
    human = sys.stderr if args.json_out == "-" else sys.stdout
    verdict = "met" if plan.met else "NOT met"
    print(
        f"scenario {scenario.name}, policy {args.policy}: target {args.target!r} {verdict} over "
        f"the shift, {args.replications} seed(s) pooled; {plan.evaluations} simulations in "
        f"{elapsed:.1f} s",
        file=human,
    )
    print("| hour | volunteers |\n|---:|---:|", file=human)
    for hour, count in enumerate(plan.per_hour):
        print(f"| {hour:02d}-{hour + 1:02d} | {count} |", file=human)
    print(f"volunteer-hours: {sum(plan.per_hour)}", file=human)
    for text, values in plan.figures.items():
        shown = ", ".join(_shown(v) for v in values)
        print(f"{text}: {shown} (whole shift: per seed, then pooled)", file=human)
    if args.json_out:
        _write_json(
            args.json_out,
            {
                "scenario": _scenario_summary(scenario, scenario.seed),
                "policy": args.policy,
                "targets": [t.text for t in targets],
                "replications": args.replications,
                "per_hour": plan.per_hour,
                "met": plan.met,
                "figures": {
                    text: [_json_value(v) for v in values] for text, values in plan.figures.items()
                },
            },
        )
    return 0 if plan.met else 1


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args and args[0] in {"-h", "--help", "help"}:
        print(_USAGE)
        return 0
    try:
        if args and args[0] == "staff":
            return _staff(args[1:])
        if args and args[0] == "scenarios":
            for name in shipped_scenarios():
                scenario = load_scenario(name)
                print(f"{name}\t{scenario.description}")
            return 0
        if args and args[0] == "run":
            args = args[1:]
        return _run(args)
    except (ScenarioError, TargetError) as exc:
        print(f"beacon simulate: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
