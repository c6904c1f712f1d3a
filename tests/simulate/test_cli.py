"""`beacon simulate` as a user runs it: a process, its table, JSON and PNG files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.simulate.scenario import load_scenario
from app.simulate.staff import TargetError, parse_targets, search_staff
from app.triage.types import Level

ROOT = Path(__file__).resolve().parents[2]


def beacon(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "simulate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )


def test_run_prints_the_table_and_writes_json_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = beacon("run", "small", "--json", str(out), "--plots", str(tmp_path / "png"))
    assert done.returncode == 0, done.stderr
    assert "| Beacon | imminent |" in done.stdout
    assert "| FIFO (Chatwoot) | none |" in done.stdout
    figures = json.loads(out.read_text())
    assert [p["policy"] for p in figures["policies"]] == ["fifo", "static", "beacon"]
    levels = figures["policies"][2]["levels"]
    assert set(levels) == {"none", "low", "moderate", "high", "imminent"}
    assert {"wait_p50_s", "wait_p95_s", "wait_p99_s", "abandoned", "handed_off"} <= set(
        levels["imminent"]
    )
    assert figures["scenario"]["settings"]["queue_wait_ceiling_s"] == 600.0
    for name in ("small-waits.png", "small-over-shift.png"):
        png = (tmp_path / "png" / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(png) > 10_000


def test_the_same_seed_prints_the_same_json_and_the_seed_flag_changes_it() -> None:
    first = beacon("small", "--json", "-", "--seed", "5")
    again = beacon("small", "--json", "-", "--seed", "5")
    other = beacon("small", "--json", "-", "--seed", "6")
    assert first.returncode == again.returncode == other.returncode == 0
    assert json.loads(first.stdout) == json.loads(again.stdout)
    assert json.loads(first.stdout) != json.loads(other.stdout)


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[settings]\noffer_timeout_s = 0\n")
    done = beacon(str(bad))
    assert done.returncode == 2
    assert "offer_timeout_s" in done.stderr
    assert "Traceback" not in done.stderr
    done = beacon("staff", "small", "--target", "imminent fast")
    assert done.returncode == 2
    assert "cannot read target" in done.stderr
    done = beacon("small", "--policies", "lifo")
    assert done.returncode == 2


def test_targets_parse_with_units() -> None:
    (wait,) = parse_targets("imminent p95 <= 30s")
    assert (wait.level, wait.stat, wait.value, wait.strict) == (Level.imminent, "p95", 30.0, False)
    low, share = parse_targets("low p99 < 10m, moderate abandoned <= 5%")
    assert (low.value, low.strict) == (600.0, True)
    assert (share.stat, share.value) == ("abandoned", 0.05)
    for bad in ("urgent p95 <= 30s", "imminent p100 <= 1s", "low abandoned <= 5s", ""):
        with pytest.raises(TargetError):
            parse_targets(bad)


def test_staff_search_finds_the_fewest_volunteers_that_meet_the_target() -> None:
    small = load_scenario("small")
    targets = parse_targets("imminent p95 <= 30s")
    plan = search_staff(small, targets, replications=2, max_per_hour=30)
    assert plan.met
    assert len(plan.per_hour) == 12
    assert all(1 <= n < 30 for n in plan.per_hour)
    # One person fewer in the busiest hour breaks that hour's target (it is the smallest).
    from app.simulate.staff import _Search

    search = _Search(small, targets, "beacon", [small.seed, small.seed + 1])
    busiest = max(range(12), key=lambda h: plan.per_hour[h])
    fewer = [*plan.per_hour]
    fewer[busiest:] = [plan.per_hour[busiest] - 1] * (12 - busiest)
    fewer[:busiest] = plan.per_hour[:busiest]
    assert search.hour_met(
        plan.per_hour[:busiest] + [plan.per_hour[busiest]] * (12 - busiest), busiest
    )
    assert not search.hour_met(fewer, busiest)


def test_staff_command_prints_a_rota() -> None:
    done = beacon("staff", "small", "--target", "imminent p95 <= 30s", "--replications", "1")
    assert done.returncode == 0, done.stderr
    assert "| 00-01 |" in done.stdout
    assert "volunteer-hours:" in done.stdout
