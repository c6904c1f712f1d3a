"""Reconnect storm: every visitor of an instance that died resumes on another one.

1. `beacon serve` (instance A) on a fresh, migrated Postgres database; N visitors open a session
   there (``--concurrency`` handshakes at a time), each says one calm message and waits for its
   ack, so that each is a real session in the queue with a seq to resume from;
2. A is killed (SIGKILL: no graceful shutdown, as when a machine or a pod dies);
3. instance B is started on the same database and, once it answers ``/healthz``, all N
   visitors resume there at once (``--concurrency`` handshakes at a time, as a load balancer
   would send them): `hello` with their resume token and last seq, until their `status` frame
   (the end of the replay). "Time to all resumed" runs from the first resume to the last
   `status`; B's CPU seconds over the storm are reported per resume.

    .venv/bin/python -m bench.reconnect_storm [--n 5000] [--concurrency 100]
                                              [--admin-url postgresql+asyncpg://...]

Client, both servers and Postgres share the machine's cores: absolute figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect

from bench._common import (
    beacon,
    beacon_env,
    child,
    cpu_s,
    default_admin_url,
    free_port,
    fresh_database,
    pct,
    raise_fd_limit,
    serve_args,
    summary_line,
)

CALM = "hi, is anyone there?"
WAIT_S = 120.0
T = TypeVar("T")


@dataclass
class Visitor:
    token: str
    last_seq: int


async def _until(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """Frames until one of ``kind``; an `error` frame ends the wait with its code."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        if frame.get("type") == kind:
            return frame
        if frame.get("type") == "error":
            raise RuntimeError(str(frame.get("code")))


async def _drain(ws: ClientConnection) -> None:
    """Keep reading (status updates), so that the connection keeps answering pings."""
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def open_visitor(
    base: str, held: list[tuple[ClientConnection, asyncio.Task[None]]]
) -> Visitor:
    ws = await connect(f"{base}/v1/chat", open_timeout=WAIT_S, compression=None)
    try:
        await ws.send(json.dumps({"type": "hello", "locale": "en"}))
        session = await _until(ws, "session")
        cid = uuid.uuid4().hex
        await ws.send(json.dumps({"type": "message", "client_msg_id": cid, "text": CALM}))
        ack = await _until(ws, "ack")
    except BaseException:
        await ws.close()
        raise
    held.append((ws, asyncio.create_task(_drain(ws))))
    return Visitor(str(session["resume_token"]), int(ack["seq"]))


async def resume_visitor(base: str, visitor: Visitor, done_at: list[float]) -> ClientConnection:
    ws = await connect(f"{base}/v1/chat", open_timeout=WAIT_S, compression=None)
    try:
        hello = {"type": "hello", "resume_token": visitor.token, "last_seq": visitor.last_seq}
        await ws.send(json.dumps(hello))
        await _until(ws, "status")
    except BaseException:
        await ws.close()
        raise
    done_at.append(time.perf_counter())
    return ws


async def bounded(
    n: int, concurrency: int, one: Callable[[int], Awaitable[T]], failures: Counter[str]
) -> list[T]:
    """``one(i)`` for i < n, at most ``concurrency`` at a time; failures counted by kind."""
    gate = asyncio.Semaphore(concurrency)
    results: list[T] = []

    async def run(i: int) -> None:
        async with gate:
            try:
                results.append(await one(i))
            except Exception as exc:  # counted and reported, never silently dropped
                failures[f"{type(exc).__name__}: {exc}"[:80]] += 1

    await asyncio.gather(*(run(i) for i in range(n)))
    return results


async def main(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_fd_limit(args.n * 2 + 1024)
    if limit < args.n + 256:
        sys.exit(f"open-file limit {limit} is too low for {args.n} connections (raise ulimit -n)")
    print(
        f"n={args.n} concurrency={args.concurrency} "
        f"(client, servers and Postgres share {os.cpu_count()} cores)"
    )
    open_failures: Counter[str] = Counter()
    resume_failures: Counter[str] = Counter()
    async with fresh_database(args.admin_url) as url:
        env = beacon_env(url)
        await asyncio.to_thread(beacon, ["db", "upgrade"], env)
        port = free_port()
        held: list[tuple[ClientConnection, asyncio.Task[None]]] = []
        with child(serve_args(port), env, port, ready_path="/healthz") as instance_a:
            base = f"ws://127.0.0.1:{port}"
            started = time.perf_counter()
            visitors = await bounded(
                args.n, args.concurrency, lambda _: open_visitor(base, held), open_failures
            )
            open_s = time.perf_counter() - started
            instance_a.kill()  # a dead instance: no close frames, no shutdown work
            instance_a.wait()
        for ws, reader in held:
            reader.cancel()
            ws.transport.abort()
        print(
            f"instance A: {len(visitors)}/{args.n} visitors opened and spoke in {open_s:.1f} s; "
            f"failures: {dict(open_failures) or 'none'}; killed"
        )

        port = free_port()
        with child(serve_args(port), env, port, ready_path="/healthz") as instance_b:
            base = f"ws://127.0.0.1:{port}"
            done_at: list[float] = []
            cpu_before = cpu_s(instance_b.pid)
            started = time.perf_counter()
            sockets = await bounded(
                len(visitors),
                args.concurrency,
                lambda i: resume_visitor(base, visitors[i], done_at),
                resume_failures,
            )
            storm_s = (max(done_at) if done_at else time.perf_counter()) - started
            cpu = cpu_s(instance_b.pid) - cpu_before
            alive = instance_b.poll() is None
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    offsets = [t - started for t in done_at]
    print(
        f"instance B: {len(sockets)}/{len(visitors)} resumed in {storm_s:.2f} s "
        f"({len(sockets) / storm_s if storm_s else 0:.0f}/s; half by {pct(offsets, 50):.2f} s, "
        f"99 % by {pct(offsets, 99):.2f} s); failures: {dict(resume_failures) or 'none'}; "
        f"server CPU {cpu:.1f} s = {cpu / max(1, len(sockets)) * 1000:.2f} ms per resume; "
        f"alive: {alive}"
    )
    summary: dict[str, Any] = {
        "bench": "reconnect_storm",
        "n": args.n,
        "opened": len(visitors),
        "open_s": round(open_s, 2),
        "resumed": len(sockets),
        "resume_failures": sum(resume_failures.values()),
        "storm_s": round(storm_s, 2),
        "resume_cpu_ms_per_visitor": round(cpu / max(1, len(sockets)) * 1000, 3),
    }
    print(summary_line(summary))
    return summary


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reconnect_storm", description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--admin-url", default=default_admin_url())
    args = parser.parse_args()
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
