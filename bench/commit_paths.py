"""The group commit's two paths, the committer alone (no sockets, no encoder): the locked
transaction (BEGIN, lock the rows, INSERT + NOTIFY, COMMIT) against the one guarded statement
a conversation under way is stored by (app/chat/commit_fast.py), in the same run, alternating.

For each path (``one_statement`` off, then on, ``--rounds`` times) a fresh committer on a fresh,
migrated Postgres database opens ``--sessions`` sessions and sends each two messages (the first
joins the queue and is always locked), then:

1. **one at a time**: ``--n`` messages, round robin over the sessions, each awaited before the
   next (time to commit with nothing else going on: the round trips);
2. **all at once**: every session sends ``--burst`` messages concurrently (group commits of many
   sessions: CPU per message).

Triage is a stub that rates everything calm (the encoder costs the same on both paths, and
would hide the difference). CPU is this process's (the committer runs in it; Postgres apart).

    .venv/bin/python -m bench.commit_paths [--n 1000] [--sessions 5] [--burst 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from app.bus import InProcessBus
from app.chat.committer import MessageCommitter, NewMessage
from app.chat.service import open_session
from app.core.db import create_engine, create_sessionmaker, transaction
from app.core.metrics import Metrics
from app.triage import Level, TriageResult
from bench._common import (
    beacon,
    beacon_env,
    default_admin_url,
    fresh_database,
    summary_line,
)


def _calm(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
    return [TriageResult(level=Level.none, score=0.0, signals=(), model_version="b") for _ in items]


async def _one_path(url: str, one_statement: bool, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_engine(url, pool_size=5)
    sessionmaker = create_sessionmaker(engine)
    committer = MessageCommitter(
        sessionmaker, InProcessBus(), Metrics(), triage=_calm, one_statement=one_statement
    )
    await committer.start()
    try:
        sessions = []
        for _ in range(args.sessions):
            async with transaction(sessionmaker) as db:
                view, _ = await open_session(
                    db, InProcessBus(), locale="en", channel=None, token_ttl_s=3600
                )
            sessions.append(view.id)
        for session_id in sessions:
            for text in ("hi", "are you there"):
                await committer.submit(NewMessage(session_id, "visitor", text))
        latencies = []
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(args.n):
            started = time.perf_counter()
            await committer.submit(NewMessage(sessions[i % len(sessions)], "visitor", f"m{i}"))
            latencies.append((time.perf_counter() - started) * 1000)
        one_cpu = (time.process_time() - cpu) / args.n * 1000
        one_wall = time.perf_counter() - wall
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(
            *(
                committer.submit(NewMessage(session_id, "visitor", f"b{i}"))
                for i in range(args.burst)
                for session_id in sessions
            )
        )
        burst = args.burst * len(sessions)
        burst_cpu = (time.process_time() - cpu) / burst * 1000
        burst_rate = burst / (time.perf_counter() - wall)
        registry = committer._metrics.registry
        paths = {
            path: int(registry.get_sample_value("beacon_chat_commits_total", {"path": path}) or 0)
            for path in ("one_statement", "locked", "missed")
        }
    finally:
        await committer.stop()
        await engine.dispose()
    latencies.sort()
    return {
        "one_statement": one_statement,
        "p50_ms": round(latencies[len(latencies) // 2], 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
        "mean_ms": round(statistics.mean(latencies), 3),
        "per_s_one_at_a_time": round(args.n / one_wall, 1),
        "cpu_ms_per_message": round(one_cpu, 3),
        "burst_per_s": round(burst_rate, 1),
        "burst_cpu_ms_per_message": round(burst_cpu, 3),
        "commits": paths,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    async with fresh_database(args.admin_url) as url:
        await asyncio.to_thread(beacon, ["db", "upgrade"], beacon_env(url))
        for _ in range(args.rounds):
            for one_statement in (False, True):
                run = await _one_path(url, one_statement, args)
                runs.append(run)
                label = "one statement" if one_statement else "locked (baseline)"
                print(
                    f"{label:18} one at a time: p50 {run['p50_ms']:6.2f} ms  p99 "
                    f"{run['p99_ms']:6.2f} ms  {run['cpu_ms_per_message']:.3f} ms CPU/message; "
                    f"all at once: {run['burst_per_s']:7.0f} msg/s  "
                    f"{run['burst_cpu_ms_per_message']:.3f} ms CPU/message; commits "
                    f"{run['commits']}"
                )

    def best(one_statement: bool, key: str) -> float:
        return min(r[key] for r in runs if r["one_statement"] is one_statement)

    ratios = {
        key: round(best(True, key) / best(False, key), 3)
        for key in ("p50_ms", "p99_ms", "cpu_ms_per_message", "burst_cpu_ms_per_message")
    }
    print(
        "one statement / locked (best of each): "
        + ", ".join(f"{key} {value}x" for key, value in ratios.items())
    )
    return {
        "bench": "commit_paths",
        "n": args.n,
        "p50_ms": best(True, "p50_ms"),
        "locked_p50_ms": best(False, "p50_ms"),
        "cpu_ms_per_message": best(True, "cpu_ms_per_message"),
        "locked_cpu_ms_per_message": best(False, "cpu_ms_per_message"),
        "ratios": ratios,
    }


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="messages sent one at a time")
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--burst", type=int, default=40, help="messages per session, at once")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two paths")
    parser.add_argument("--admin-url", default=default_admin_url())
    return parser.parse_args(argv)


if __name__ == "__main__":
    summary = asyncio.run(main(parse()))
    print(summary_line(summary))
    sys.exit(0)
