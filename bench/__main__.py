"""Run every benchmark, one after another, and end with a summary table against SPEC §10.

    .venv/bin/python -m bench [--full] [--only NAME ...] [--admin-url postgresql+asyncpg://...]

Quick sizes by default (a few minutes in all); ``--full`` runs each bench with its own defaults.
Each bench is its own child process (its own servers, database and file limits), its output is
shown as it runs, and a bench that fails or is missing (the triage bench lives with the triage
engine) is reported in the table instead of stopping the others.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
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
    ack = re.search(r"-> ack @ .*?p99\s+([\d.]+) ms", out)
    ratio = re.search(r"ratio chat/echo: ([\d.]+)", out)
    if not (delivery and ack and ratio):
        raise ValueError("figures not found")
    return (
        f"p99 ack {ack.group(1)} ms, to other socket {delivery.group(1)} ms; "
        f"saturation {ratio.group(1)}x echo"
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


def _flood(out: str) -> str:
    f = _summary(out)
    return (
        f"canary ack p99 {f['ack_p99_flood_ms']} ms during {f['opened']} drive-bys "
        f"({f['ack_p99_ratio']}x quiet); position {f['canary_position_before']} -> "
        f"{f['canary_position_after']}, late visitor {f['late_visitor_position']}"
    )


@dataclass(frozen=True)
class Bench:
    name: str
    target: str
    quick: tuple[str, ...]
    full: tuple[str, ...]
    headline: Callable[[str], str]


BENCHES = (
    Bench("triage_bench", "p99 <= 10 ms; >= 1000/s", ("--json",), ("--json",), _triage),
    Bench(
        "chat_e2e",
        "p99 <= 50 ms @ 500/s",
        ("--clients", "50", "--seconds", "5", "--rate", "500"),
        (),
        _chat,
    ),
    Bench("routing_offer_latency", "(1st message -> offer)", ("--n", "100"), (), _routing),
    Bench("imminent_offer", "p99 <= 100 ms", ("--n", "100"), (), _imminent),
    Bench("idle_connections", "5000 idle; KiB/conn", ("--n", "2000", "--hold", "5"), (), _idle),
    Bench(
        "drive_by_flood",
        "2000 drive-bys: position same, ack p99 < 50 ms",
        ("--n", "2000", "--quiet-s", "3"),
        (),
        _flood,
    ),
)


@dataclass
class Outcome:
    bench: Bench
    status: str
    result: str = ""
    seconds: float = 0.0


def run(bench: Bench, full: bool, timeout_s: float) -> Outcome:
    if importlib.util.find_spec(f"bench.{bench.name}") is None:
        return Outcome(bench, "skipped", "not present in this tree")
    args = [sys.executable, "-m", f"bench.{bench.name}", *(bench.full if full else bench.quick)]
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
    try:
        return Outcome(bench, "ok", bench.headline("".join(lines)), seconds)
    except (ValueError, KeyError, TypeError) as exc:
        return Outcome(bench, "ok", f"(figures not parsed: {exc}; see output above)", seconds)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--full", action="store_true", help="each bench's own default sizes")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], metavar="NAME")
    parser.add_argument("--admin-url", default=default_admin_url())
    parser.add_argument("--timeout", type=float, default=900.0, help="per bench, seconds")
    args = parser.parse_args()
    os.environ[ADMIN_URL_ENV] = args.admin_url  # the benches' default Postgres server
    chosen = [b for b in BENCHES if args.only is None or b.name in args.only]
    outcomes = [run(bench, args.full, args.timeout) for bench in chosen]

    print(f"\n=== summary ({'full' if args.full else 'quick'} sizes, {os.cpu_count()} cores)")
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
