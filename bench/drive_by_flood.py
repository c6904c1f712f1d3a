"""Drive-by flood: N anonymous sessions opened and dropped while a real visitor (the canary)
keeps talking, against `beacon serve` on Postgres (SPEC §9; issue 10 measured 2,000 of them
leaving 1,013 sessions `waiting` ahead of any real visitor).

Phases:

1. quiet     — the canary opens a chat, speaks, and then sends ``--rate`` messages/s for
               ``--quiet-s`` seconds: its ack latency without a flood (the same-run baseline);
2. flood     — the canary keeps sending at the same rate while N drive-bys (``--concurrency``
               at a time) each open a session (`hello`), read the `session` frame and drop it
               (half close cleanly, half abort the TCP connection). Each drive-by address opens
               at most the per-client burst, so the limit refuses none of them: every one of the
               N sessions is really opened, the worst case for the queue. They connect from
               127.x.y.z source addresses (all of 127/8 is loopback on Linux);
3. after     — the canary's queue position (a second socket resuming its session is told it),
               a late visitor's position once it has spoken, the silent sessions left in the
               database right after the flood and after the silent-session TTL;
4. one address — ``--one-address`` hellos from a single address: how many the limit opens and
               how many it refuses (`too_many_sessions`, close 1013).

    .venv/bin/python -m bench.drive_by_flood [--n 2000] [--rate 20] [--concurrency 50]
                                             [--accept-pacing true|false]
                                             [--admin-url postgresql+asyncpg://...]

The server paces new connections while the canary talks (app/core/pacing.py), so the flood
takes longer than the server could go flat out: "sessions/s" is what pacing let through, and
``--accept-pacing false`` measures the same flood with every connection let in at once.

Target (issue 10): the canary's position is unchanged, the late visitor is next after it, and
the canary's ack p99 during the flood stays under 50 ms. The server, this load generator and
Postgres share the machine's cores, so absolute numbers are a floor; the flood/quiet ratio is
the figure to compare across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench._common import (
    asyncpg_dsn,
    beacon,
    beacon_env,
    child,
    cpu_s,
    default_admin_url,
    free_port,
    fresh_database,
    pct,
    serve_args,
    summary_line,
)

HELLO = {"type": "hello", "resume_token": None, "last_seq": None, "locale": "en"}
BURST = 20  # the shipped BEACON_SESSION_OPEN_BURST: each drive-by address opens this many
# What the canary says must stay `none` for the triage engine: an escalation (safety message,
# handoff clock) would measure escalation, not the flood.
CALM = "hi"
SILENT_TTL_S = 5.0


def drive_by_address(index: int) -> str:
    """127.10.x.y, a new address every BURST sessions."""
    block = index // BURST
    return f"127.10.{block // 250}.{block % 250 + 1}"


async def _json(ws: ClientConnection, wait_s: float = 10.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
    return frame


@dataclass
class Canary:
    """A real visitor: one session, messages sent on a fixed schedule, acks timed."""

    ws: ClientConnection
    session_id: str = ""
    resume_token: str = ""
    positions: list[int | None] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)
    acks_ms: dict[str, float] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None
    _spoke: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def open(cls, base: str) -> Canary:
        # No client keepalive: a slow ack must show up in the figures, not end the connection.
        ws = await connect(
            f"{base}/v1/chat", compression=None, local_addr=("127.0.0.1", 0), ping_interval=None
        )
        canary = cls(ws)
        await ws.send(json.dumps(HELLO))
        session = await _json(ws)
        canary.session_id, canary.resume_token = session["session_id"], session["resume_token"]
        canary._reader = asyncio.create_task(canary._read())
        return canary

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "ack":
                    cid = frame["client_msg_id"]
                    self.acks_ms[cid] = (time.perf_counter() - self.sent_at[cid]) * 1000
                elif kind == "status":
                    self.positions.append(frame["queue_position"])
                    if frame["queue_position"] is not None:
                        self._spoke.set()
                elif kind == "error":
                    self.errors.append(frame)

    async def say(self, text: str) -> str:
        cid = uuid.uuid4().hex
        self.sent_at[cid] = time.perf_counter()
        await self.ws.send(json.dumps({"type": "message", "client_msg_id": cid, "text": text}))
        return cid

    async def talk(self, rate: float, stop: asyncio.Event) -> list[str]:
        """Messages at ``rate``/s (open loop: a slow ack does not delay the next send)."""
        sent: list[str] = []
        interval = 1 / rate
        next_at = time.perf_counter()
        while not stop.is_set():
            sent.append(await self.say(CALM))
            next_at += interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.perf_counter()))
        return sent

    async def acked(self, cids: list[str], wait_s: float = 30.0) -> list[float]:
        try:
            async with asyncio.timeout(wait_s):
                while any(c not in self.acks_ms for c in cids):  # noqa: ASYNC110 - client poll
                    await asyncio.sleep(0.01)
        except TimeoutError:
            missing = sum(c not in self.acks_ms for c in cids)
            raise SystemExit(
                f"canary: {missing} of {len(cids)} messages not acked within {wait_s:.0f} s; "
                f"close code {self.ws.close_code}; errors {self.errors[-3:]}"
            ) from None
        return [self.acks_ms[c] for c in cids]

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader


async def current_position(base: str, token: str) -> int | None:
    """What a visitor resuming this session is told now (a fresh look at the queue)."""
    async with connect(f"{base}/v1/chat", compression=None) as ws:
        await ws.send(json.dumps({**HELLO, "resume_token": token, "last_seq": None}))
        while True:
            frame = await _json(ws)
            if frame["type"] == "status":
                position: int | None = frame["queue_position"]
                return position


async def late_visitor_position(base: str) -> int | None:
    async with connect(f"{base}/v1/chat", compression=None, local_addr=("127.0.0.2", 0)) as ws:
        await ws.send(json.dumps(HELLO))
        await ws.send(json.dumps({"type": "message", "client_msg_id": "m1", "text": "hi"}))
        while True:
            frame = await _json(ws)
            if frame["type"] == "status" and frame["queue_position"] is not None:
                position: int = frame["queue_position"]
                return position


async def drive_by(base: str, address: str, abort: bool) -> str:
    """One drive-by: hello, read the answer, drop. Returns the answer's type or error code."""
    ws = await connect(f"{base}/v1/chat", compression=None, local_addr=(address, 0))
    try:
        await ws.send(json.dumps(HELLO))
        frame = await _json(ws)
        return str(frame.get("code") or frame["type"])
    finally:
        if abort:
            ws.transport.abort()
        else:
            await ws.close()


async def flood(base: str, n: int, concurrency: int) -> tuple[dict[str, int], float]:
    gate = asyncio.Semaphore(concurrency)
    outcomes: dict[str, int] = {}

    async def one(i: int) -> None:
        async with gate:
            try:
                answer = await drive_by(base, drive_by_address(i), abort=i % 2 == 0)
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                answer = type(exc).__name__
            outcomes[answer] = outcomes.get(answer, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return outcomes, time.perf_counter() - started


def _flood_in_process(base: str, n: int, concurrency: int, results: Any) -> None:
    """The flood's own process and event loop (see ``flood_elsewhere``)."""
    results.put(asyncio.run(flood(base, n, concurrency)))


async def flood_elsewhere(base: str, n: int, concurrency: int) -> tuple[dict[str, int], float]:
    """The flood from a second process. In the canary's process the drive-bys' handshakes would
    share its event loop, and an ack that reached the canary's socket in time would be read late
    behind them: the figure would include the load generator's own lag (a real visitor is on a
    device of their own). The server still competes with the generator for the cores."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    worker = context.Process(target=_flood_in_process, args=(base, n, concurrency, results))
    worker.start()
    try:
        outcome: tuple[dict[str, int], float] = await asyncio.to_thread(results.get)
    finally:
        await asyncio.to_thread(worker.join)
    return outcome


async def one_address(base: str, n: int) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    for _ in range(n):
        answer = await drive_by(base, "127.11.0.1", abort=False)
        outcomes[answer] = outcomes.get(answer, 0) + 1
    return outcomes


async def silent_waiting(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM chat_sessions "
            "WHERE status = 'waiting' AND visitor_spoke_at IS NULL"
        )
        return count
    finally:
        await conn.close()


def _dist(label: str, values: list[float]) -> str:
    return (
        f"{label:<40} p50 {pct(values, 50):7.2f}  p99 {pct(values, 99):7.2f}  "
        f"max {max(values, default=float('nan')):7.2f} ms  n={len(values)}"
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database(args.admin_url) as url:
        env = beacon_env(
            url,
            session_open_burst=str(BURST),
            silent_session_ttl_s=str(SILENT_TTL_S),
            visitor_sweep_interval_s="1",
            # The canary's own frame limit is not what is measured (a stalled load generator
            # sends its backlog at once).
            ws_rate_limit_per_s="1000",
            ws_rate_limit_burst="1000",
            accept_pacing=args.accept_pacing,
        )
        await asyncio.to_thread(beacon, ["db", "upgrade"], env)
        port = free_port()
        with child(serve_args(port), env, port, ready_path="/healthz") as proc:
            base = f"ws://127.0.0.1:{port}"
            canary = await Canary.open(base)
            await canary.say(CALM)
            await asyncio.wait_for(canary._spoke.wait(), 10)
            position_before = next(p for p in canary.positions if p is not None)

            stop = asyncio.Event()
            quiet_cpu_before, quiet_started = cpu_s(proc.pid), time.perf_counter()
            talking = asyncio.create_task(canary.talk(args.rate, stop))
            await asyncio.sleep(args.quiet_s)
            # What the canary alone costs the server per second, to take out of the flood's.
            canary_share = (cpu_s(proc.pid) - quiet_cpu_before) / (
                time.perf_counter() - quiet_started
            )
            stop.set()
            quiet = await canary.acked(await talking)

            stop = asyncio.Event()
            talking = asyncio.create_task(canary.talk(args.rate, stop))
            server_cpu_before = cpu_s(proc.pid)
            outcomes, flood_s = await flood_elsewhere(base, args.n, args.concurrency)
            server_cpu_s = cpu_s(proc.pid) - server_cpu_before
            stop.set()
            during = await canary.acked(await talking)
            silent_after_flood = await silent_waiting(url)

            position_after = await current_position(base, canary.resume_token)
            late_position = await late_visitor_position(base)
            await asyncio.sleep(SILENT_TTL_S + 2.5)  # the TTL plus a couple of sweeps
            silent_after_ttl = await silent_waiting(url)
            single = await one_address(base, args.one_address)
            alive = proc.poll() is None
            await canary.close()

    opened = outcomes.get("session", 0)
    print(
        f"n={args.n} drive-bys from {math.ceil(args.n / BURST)} addresses, "
        f"concurrency {args.concurrency}; canary at {args.rate:.0f} msg/s "
        f"(client, server and Postgres share {os.cpu_count()} cores)"
    )
    print(
        f"flood: {opened} opened in {flood_s:.1f} s ({args.n / flood_s:.0f} sessions/s); "
        f"answers {outcomes}"
    )
    flood_cpu_s = max(0.0, server_cpu_s - canary_share * flood_s)
    print(
        f"server CPU during the flood: {server_cpu_s:.2f} s = {server_cpu_s / flood_s:.0%} of a "
        f"core; the canary alone used {canary_share:.0%} of a core, so "
        f"{flood_cpu_s * 1000 / args.n:.2f} ms per drive-by"
    )
    print(_dist("canary ack, quiet (baseline)", quiet))
    print(_dist("canary ack, during the flood", during))
    ratio = pct(during, 99) / pct(quiet, 99)
    print(f"ratio flood/quiet ack p99: {ratio:.2f}x")
    print(
        f"canary queue position: before {position_before}, after {position_after}; "
        f"a visitor arriving after the flood: {late_position}"
    )
    print(
        f"silent sessions waiting: right after the flood {silent_after_flood}, "
        f"after the {SILENT_TTL_S:.0f} s silent TTL {silent_after_ttl}"
    )
    print(f"{args.one_address} hellos from one address: {single}")
    print(f"canary error frames: {len(canary.errors)}; server alive: {alive}")
    summary: dict[str, Any] = {
        "bench": "drive_by_flood",
        "n": args.n,
        "opened": opened,
        "flood_s": round(flood_s, 2),
        "accept_pacing": args.accept_pacing,
        "server_cpu_ms_per_drive_by": round(flood_cpu_s * 1000 / args.n, 3),
        "canary_position_before": position_before,
        "canary_position_after": position_after,
        "late_visitor_position": late_position,
        "ack_p99_quiet_ms": round(pct(quiet, 99), 2),
        "ack_p99_flood_ms": round(pct(during, 99), 2),
        "ack_p99_ratio": round(ratio, 2),
        "silent_after_flood": silent_after_flood,
        "silent_after_ttl": silent_after_ttl,
        "one_address": single,
    }
    print(summary_line(summary))
    return summary


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drive_by_flood", description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="drive-by sessions")
    parser.add_argument("--concurrency", type=int, default=50, help="drive-bys at a time")
    # 20/s: a flood of 2,000 lasts ~3 s here, and p99 needs more than the ~15 samples 5/s gave
    # (their p99 was just the largest).
    parser.add_argument("--rate", type=float, default=20.0, help="canary messages per second")
    parser.add_argument("--quiet-s", type=float, default=5.0, help="baseline phase length")
    parser.add_argument("--one-address", type=int, default=40, help="hellos from one address")
    parser.add_argument(
        "--accept-pacing",
        choices=["true", "false"],
        default="true",
        help="BEACON_ACCEPT_PACING: false measures the flood with every connection let in at once",
    )
    parser.add_argument("--admin-url", default=default_admin_url())
    args = parser.parse_args()
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
