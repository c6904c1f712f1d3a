"""Run every benchmark, one after another, and end with a summary table against SPEC §10.

    .venv/bin/python -m bench [--quick | --full | --tiny] [--only NAME ...] [--json FILE]
                              [--admin-url postgresql+asyncpg://...]

Quick sizes by default (a few minutes in all); ``--full`` runs each bench with its own defaults,
``--tiny`` the smallest that still gives every figure (for tests of the benches themselves, not
for numbers). ``--json FILE`` writes the figures of issue 13's table (`FIGURES`), each from the
`SUMMARY` line of the bench that measures it (null when that bench did not run or failed), plus
every bench's whole summary.
Each bench is its own child process (its own servers, database and file limits), its output is
shown as it runs, and a bench that fails or is missing (the triage bench lives with the triage
engine) is reported in the table instead of stopping the others.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench._common import ADMIN_URL_ENV, ROOT, default_admin_url


def _summary(out: str) -> dict[str, Any]:
    """The bench's `SUMMARY {...}` line, or a bare JSON object as its last line."""
    for line in reversed(out.splitlines()):
        line = line.strip().removeprefix("SUMMARY ")
        if line.startswith("{") and line.endswith("}"):
            found: dict[str, Any] = json.loads(line)
            return found
    raise ValueError("no summary line")


def _triage(out: str) -> str:
    report = json.loads(out)
    chat = report["chat_with_10_context"]
    rate = report["batch_texts_per_s"]["all"]
    return f"p99 {chat['p99_ms']} ms with context; batch {rate['wall']}/s"


def _chat(out: str) -> str:
    delivery = re.search(r"other socket @ .*?p99\s+([\d.]+) ms", out)
    volunteer = re.search(r"-> volunteer @ .*?p99\s+([\d.]+) ms", out)
    ack = re.search(r"-> ack @ .*?p99\s+([\d.]+) ms", out)
    ratio = re.search(r"ratio chat/echo: ([\d.]+)", out)
    if not (delivery and volunteer and ack and ratio):
        raise ValueError("figures not found")
    return (
        f"p99 ack {ack.group(1)} ms, to the volunteer {volunteer.group(1)} ms, to another "
        f"visitor socket {delivery.group(1)} ms; saturation {ratio.group(1)}x echo"
    )


def _routing(out: str) -> str:
    figures = _summary(out)
    return f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"


def _imminent(out: str) -> str:
    figures = _summary(out)
    levels = ",".join(f"{k}×{v}" for k, v in figures["levels"].items())
    return (
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms ({figures['p99_ratio_to_pong']}x"
        f" ping-pong p99); offered as {levels}"
    )


def _idle(out: str) -> str:
    figures = _summary(out)
    return (
        f"{figures['still_open_after_hold']}/{figures['n']} held, "
        f"{figures['kib_per_connection']} KiB/conn ({figures['ratio_to_echo']}x echo), "
        f"opened in {figures['open_s']} s"
    )


def _storm(out: str) -> str:
    f = _summary(out)
    return (
        f"{f['resumed']}/{f['opened']} visitors of a killed instance resumed in {f['storm_s']} s "
        f"({f['resume_cpu_ms_per_visitor']} ms server CPU each)"
    )


def _flood(out: str) -> str:
    f = _summary(out)
    return (
        f"canary ack p99 {f['ack_p99_flood_ms']} ms during {f['opened']} drive-bys "
        f"({f['ack_p99_ratio']}x quiet); position {f['canary_position_before']} -> "
        f"{f['canary_position_after']}, late visitor {f['late_visitor_position']}"
    )


def _commit_paths(out: str) -> str:
    f = _summary(out)
    return (
        f"committer alone, one at a time: p50 {f['p50_ms']} ms in one statement, "
        f"{f['locked_p50_ms']} ms locked; CPU/message {f['cpu_ms_per_message']} against "
        f"{f['locked_cpu_ms_per_message']} ms"
    )


@dataclass(frozen=True)
class Bench:
    name: str
    target: str
    quick: tuple[str, ...]
    full: tuple[str, ...]
    headline: Callable[[str], str]
    tiny: tuple[str, ...] = ()


BENCHES = (
    Bench("triage_bench", "p99 <= 10 ms; >= 1000/s", ("--json",), ("--json",), _triage),
    Bench(
        "chat_e2e",
        "p99 <= 50 ms @ 500/s",
        ("--clients", "50", "--seconds", "5", "--rate", "500"),
        (),
        _chat,
        ("--clients", "5", "--seconds", "0.5", "--rate", "50"),
    ),
    Bench(
        "commit_paths",
        "(one statement against the locked path)",
        ("--n", "1000"),
        (),
        _commit_paths,
        ("--n", "10", "--burst", "2", "--rounds", "1"),
    ),
    Bench(
        "routing_offer_latency",
        "(hello / 1st message -> offer)",
        ("--n", "100"),
        (),
        _routing,
        ("--n", "5"),
    ),
    Bench(
        "imminent_offer",
        "p99 <= 100 ms",
        ("--n", "100"),
        (),
        _imminent,
        ("--n", "3", "--warmup", "1", "--queue", "2"),
    ),
    Bench(
        "idle_connections",
        "5000 idle; KiB/conn",
        ("--n", "2000", "--hold", "5"),
        (),
        _idle,
        ("--n", "30", "--hold", "1"),
    ),
    Bench(
        "reconnect_storm",
        "(issue 13: 5000 resumed in <= 10 s)",
        ("--n", "2000"),
        (),
        _storm,
        ("--n", "20"),
    ),
    Bench(
        "drive_by_flood",
        "2000 drive-bys: position same, ack p99 < 50 ms",
        ("--n", "2000", "--quiet-s", "3"),
        (),
        _flood,
        ("--n", "40", "--quiet-s", "1"),
    ),
)

# Issue 13's table (and issue 10's flood): figure -> (bench, key of its SUMMARY, goal).
FIGURES: dict[str, tuple[str, str, str]] = {
    "imminent_offer_p99_ms": ("imminent_offer", "p99_ms", "<= 30"),
    "imminent_offer_p50_ms": ("imminent_offer", "p50_ms", ""),
    "imminent_offer_p99_ratio_to_pong": ("imminent_offer", "p99_ratio_to_pong", ""),
    "hello_to_offer_p99_ms": ("routing_offer_latency", "hello_to_offer_p99_ms", "<= 50"),
    "first_message_to_offer_p99_ms": ("routing_offer_latency", "p99_ms", ""),
    "ack_p99_ms": ("chat_e2e", "ack_p99_ms", "<= 25"),
    "volunteer_delivery_p99_ms": ("chat_e2e", "volunteer_delivery_p99_ms", "<= 25"),
    "delivery_p99_ms": ("chat_e2e", "delivery_p99_ms", ""),
    "chat_rate_msgs_per_s": ("chat_e2e", "rate", ""),
    "session_open_cpu_ms": ("idle_connections", "open_cpu_ms_per_connection", "<= 1.5"),
    "echo_open_cpu_ms": ("idle_connections", "echo_open_cpu_ms_per_connection", ""),
    "reconnect_storm_resumed": ("reconnect_storm", "resumed", "5000"),
    "reconnect_storm_s": ("reconnect_storm", "storm_s", "<= 10"),
    "reconnect_resume_cpu_ms": ("reconnect_storm", "resume_cpu_ms_per_visitor", ""),
    "idle_connections": ("idle_connections", "opened", ""),
    "idle_kib_per_connection": ("idle_connections", "kib_per_connection", "<= 36"),
    "idle_kib_ratio_to_echo": ("idle_connections", "ratio_to_echo", ""),
    "idle_cpu_share": ("idle_connections", "idle_cpu_share", "<= 0.02"),
    "chat_saturation_msgs_per_s": ("chat_e2e", "chat_msgs_per_s", ""),
    "echo_msgs_per_s": ("chat_e2e", "echo_msgs_per_s", ""),
    "durable_echo_msgs_per_s": ("chat_e2e", "durable_echo_msgs_per_s", ""),
    "saturation_ratio_to_echo": ("chat_e2e", "ratio_to_echo", ""),
    "saturation_ratio_to_durable_echo": ("chat_e2e", "ratio_to_durable_echo", ">= 0.5"),
    "chat_msgs_per_commit": ("chat_e2e", "chat_msgs_per_commit", ""),
    "durable_echo_frames_per_commit": ("chat_e2e", "durable_echo_frames_per_commit", ""),
    # Issue 10's figure: a chatting visitor's ack while drive-bys flood the instance.
    "flood_canary_ack_p99_ms": ("drive_by_flood", "ack_p99_flood_ms", "< 50"),
    "flood_canary_ack_p99_quiet_ms": ("drive_by_flood", "ack_p99_quiet_ms", ""),
}


@dataclass
class Outcome:
    bench: Bench
    status: str
    result: str = ""
    seconds: float = 0.0
    summary: dict[str, Any] | None = None


def run(bench: Bench, sizes: str, timeout_s: float) -> Outcome:
    if importlib.util.find_spec(f"bench.{bench.name}") is None:
        return Outcome(bench, "skipped", "not present in this tree")
    size_args = {"full": bench.full, "quick": bench.quick, "tiny": bench.tiny}[sizes]
    args = [sys.executable, "-m", f"bench.{bench.name}", *size_args]
    print(f"\n=== {' '.join(args[2:])}", flush=True)
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True) as proc:
        watchdog = threading.Timer(timeout_s, proc.kill)  # a silent hang still ends
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                lines.append(line)
            code = proc.wait()
        finally:
            watchdog.cancel()
    seconds = time.monotonic() - started
    if seconds >= timeout_s:
        return Outcome(bench, "timeout", f"killed after {timeout_s:.0f} s", seconds)
    if code != 0:
        return Outcome(bench, "failed", f"exit code {code}", seconds)
    out = "".join(lines)
    summary = None
    with contextlib.suppress(ValueError):
        summary = _summary(out)
    try:
        return Outcome(bench, "ok", bench.headline(out), seconds, summary)
    except (ValueError, KeyError, TypeError) as exc:
        return Outcome(
            bench, "ok", f"(figures not parsed: {exc}; see output above)", seconds, summary
        )


def figures(outcomes: list[Outcome]) -> dict[str, float | None]:
    """Issue 13's figures from the benches' summaries; null where a bench gave none."""
    summaries = {o.bench.name: o.summary or {} for o in outcomes}
    found: dict[str, float | None] = {}
    for name, (bench, key, _) in FIGURES.items():
        value = summaries.get(bench, {}).get(key)
        found[name] = None
        # NaN (no samples) is no figure, and not valid JSON either.
        if isinstance(value, int | float) and not math.isnan(value):
            found[name] = float(value)
    cpu, echo_cpu = found["session_open_cpu_ms"], found["echo_open_cpu_ms"]
    found["session_open_cpu_ratio_to_echo"] = (
        round(cpu / echo_cpu, 2) if cpu is not None and echo_cpu else None
    )
    return found


def write_json(path: str, sizes: str, outcomes: list[Outcome]) -> None:
    report = {
        "sizes": sizes,
        "cores": os.cpu_count(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "figures": figures(outcomes),
        "goals": {name: goal for name, (_, _, goal) in FIGURES.items() if goal},
        "benches": {
            o.bench.name: {
                "status": o.status,
                "seconds": round(o.seconds, 1),
                "result": o.result,
                "summary": o.summary,
            }
            for o in outcomes
        },
    }
    with open(path, "w") as file:
        json.dump(report, file, indent=2)
        file.write("\n")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="quick sizes (the default)")
    sizes.add_argument("--full", action="store_true", help="each bench's own default sizes")
    sizes.add_argument("--tiny", action="store_true", help="smallest sizes, to test the benches")
    parser.add_argument("--json", metavar="FILE", help="write issue 13's figures there")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], metavar="NAME")
    parser.add_argument("--admin-url", default=default_admin_url())
    parser.add_argument("--timeout", type=float, default=900.0, help="per bench, seconds")
    args = parser.parse_args()
    os.environ[ADMIN_URL_ENV] = args.admin_url  # the benches' default Postgres server
    chosen = [b for b in BENCHES if args.only is None or b.name in args.only]
    size = "full" if args.full else "tiny" if args.tiny else "quick"
    outcomes = [run(bench, size, args.timeout) for bench in chosen]
    if args.json:
        write_json(args.json, size, outcomes)

    print(f"\n=== summary ({size} sizes, {os.cpu_count()} cores)")
    rows = [("bench", "SPEC §10 target", "status", "time", "result")]
    rows += [
        (o.bench.name, o.bench.target, o.status, f"{o.seconds:.0f} s", o.result) for o in outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for *cells, result in rows:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)), result)
    return 0 if all(o.status in ("ok", "skipped") for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
