"""Routing latency: a visitor's first message -> an `offer` on a free volunteer's socket, and
their hello -> that offer (a widget that sends what the person typed as soon as the session opens).

A session joins the queue with its visitor's first message (a hello alone is not routed), so
that is where the clock starts. Runs `beacon serve` in a child process on a fresh Postgres
database, connects one volunteer, then opens visitors one after another, each saying one
message; each offer is accepted and the chat closed at once so the volunteer is free again.
Prints p50/p90/p99/max in ms, and the hello -> offer p50/p99, after ``--warmup`` rounds (5) that
are not recorded, as bench/imminent_offer.py does.

    .venv/bin/python -m bench.routing_offer_latency [--n 300] [--warmup 5] [--admin-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

import httpx
from websockets.asyncio.client import connect

from bench._common import ROOT, default_admin_url
from bench._common import create_database as _create_db
from bench._common import drop_database as _drop_db
from bench._common import free_port as _free_port


def main(n: int, admin_url: str, warmup: int = 5) -> None:
    """Blocking set-up (database, migrations, account, server) then the async measurement."""
    name = f"beacon_bench_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(_create_db(admin_url, name))
    env = {
        **os.environ,
        "BEACON_DATABASE_URL": url,
        "BEACON_ENV": "test",
        "BEACON_LOG_LEVEL": "WARNING",
        "BEACON_WS_RATE_LIMIT_PER_S": "1000",
        "BEACON_WS_RATE_LIMIT_BURST": "1000",
        # The volunteer here accepts and closes a chat every few milliseconds.
        "BEACON_VOLUNTEER_WS_RATE_LIMIT_PER_S": "1000",
        "BEACON_VOLUNTEER_WS_RATE_LIMIT_BURST": "1000",
        # Every visitor here connects from 127.0.0.1 (bench/drive_by_flood.py measures the limit).
        "BEACON_SESSION_OPEN_BURST": "1000000",
    }
    run = [sys.executable, "-m", "app.cli"]
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([*run, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
        added = subprocess.run(
            [*run, "volunteer", "add", "bench", "--capacity", "3"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        token = json.loads(added.stdout)["token"]
        port = _free_port()
        server = subprocess.Popen(
            [*run, "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        latencies, opened, from_hello = asyncio.run(
            _measure(f"ws://127.0.0.1:{port}", token, n, warmup)
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        asyncio.run(_drop_db(admin_url, name))
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(
        json.dumps(
            {
                "bench": "visitor's first message -> offer on a free volunteer's socket",
                "n": len(latencies),
                "p50_ms": round(q[49], 2),
                "p90_ms": round(q[89], 2),
                "p99_ms": round(q[98], 2),
                "max_ms": round(latencies[-1], 2),
                # Before the clock starts: hello -> the visitor's `session` frame.
                "session_opened_p50_ms": round(statistics.median(opened), 2),
                # The whole way: hello -> session -> first message -> offer.
                "hello_to_offer_p50_ms": round(statistics.median(from_hello), 2),
                "hello_to_offer_p99_ms": round(statistics.quantiles(from_hello, n=100)[98], 2),
            }
        )
    )


async def _measure(
    ws_url: str, token: str, n: int, warmup: int = 0
) -> tuple[list[float], list[float], list[float]]:
    """``warmup`` rounds first, not recorded: a running server's latency, not the first
    sessions after a start (cold statement caches), which imminent_offer leaves out too."""
    latencies: list[float] = []
    opened: list[float] = []
    from_hello: list[float] = []
    async with connect(f"{ws_url}/v1/volunteer") as volunteer:
        await volunteer.send(json.dumps({"type": "auth", "token": token}))
        while json.loads(await volunteer.recv())["type"] != "ready":
            pass
        for i in range(-warmup, n):
            async with connect(f"{ws_url}/v1/chat") as visitor:
                hello_sent = started = time.perf_counter()
                await visitor.send(json.dumps({"type": "hello", "locale": "en"}))
                while json.loads(await asyncio.wait_for(visitor.recv(), 10))["type"] != "session":
                    pass
                if i >= 0:
                    opened.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await visitor.send(
                    json.dumps({"type": "message", "client_msg_id": "m1", "text": "hello"})
                )
                while True:
                    frame = json.loads(await asyncio.wait_for(volunteer.recv(), 10))
                    if frame["type"] == "offer":
                        break
                offered = time.perf_counter()
                if i >= 0:
                    latencies.append((offered - started) * 1000)
                    from_hello.append((offered - hello_sent) * 1000)
                sid = frame["session_id"]
                await volunteer.send(json.dumps({"type": "accept", "session_id": sid}))
                await volunteer.send(
                    json.dumps(
                        {
                            "type": "close",
                            "session_id": sid,
                            "disposition": "other",
                            "risk_level": 0,
                        }
                    )
                )
                if i % 50 == 0:
                    await asyncio.sleep(0.05)
    return latencies, opened, from_hello


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5, help="rounds first, not recorded")
    parser.add_argument("--admin-url", default=default_admin_url())
    args = parser.parse_args()
    main(args.n, args.admin_url, args.warmup)
