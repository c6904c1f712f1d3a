"""Idle visitor connections in one process (SPEC §10: "5,000 concurrent idle visitor connections in
one process; memory per connection reported"), against a bare uvicorn WebSocket echo with the
same number of idle connections in the same run as the baseline.

For each server (the echo first, then `beacon serve` on a fresh, migrated Postgres database):

1. start it as a child process (same uvicorn WebSocket settings as `beacon serve`: no
   per-message deflate, 16 KiB frames, pings every 20 s) and warm it up with a few connections
   that are opened and closed again, then read its RSS (VmRSS from /proc) — "before";
2. open N connections, at most ``--concurrency`` handshakes at a time; each sends a hello (the
   visitor `hello` opening a new session; for the echo any text frame) and waits for its answer
   (`session` / the echo). The time until all N have their answer is "time to open";
3. read RSS again — "after"; memory per connection = (after - before) / N;
4. leave them idle for ``--hold`` seconds (the server's WebSocket pings every 20 s and the
   client's own keep them alive; nothing else is sent), then check every connection is still
   open and that its handler still answers: one app-level `ping` each, every `pong` counted;
5. close them all and read RSS once more (CPython rarely hands freed memory back to the OS, so
   this shows retention, not necessarily a leak).

    .venv/bin/python -m bench.idle_connections [--n 5000] [--hold 30] [--concurrency 100]
                                               [--admin-url postgresql+asyncpg://...]

Every Beacon connection is a real session (one committed row and audit event each), so opening
them is paced by commits and by the queue-position lookup each new session gets. Client, server
and Postgres share the machine's cores; client and server CPU seconds are printed so that it
is visible which side limited the opening rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench._common import (
    asyncpg_dsn,
    beacon,
    beacon_env,
    child,
    cpu_s,
    default_admin_url,
    echo_server_args,
    free_port,
    fresh_database,
    metric_sample,
    raise_fd_limit,
    rss_kib,
    serve_args,
    summary_line,
)

# The WebSocket settings `beacon serve` passes to uvicorn (app/cli.py), for a like-for-like echo.
UVICORN_WS_FLAGS = (
    "--ws-max-size",
    "16384",
    "--ws-per-message-deflate",
    "false",
    "--ws-ping-interval",
    "20",
    "--ws-ping-timeout",
    "20",
)
HELLO = json.dumps({"type": "hello", "resume_token": None, "last_seq": None, "locale": "en"})
PING = json.dumps({"type": "ping"})
WARM_UP = 20


class IdleClient:
    """One idle connection. Its reader drains whatever the server sends (status updates), so
    the connection never stops reading — otherwise keepalive pings would go unanswered."""

    def __init__(self, ws: ClientConnection, pong_type: str) -> None:
        self.ws = ws
        self.pong_type = pong_type
        self.frames = 0
        self.pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                self.frames += 1
                if self.pong.done() or self.pong_type not in str(raw):
                    continue
                if json.loads(raw).get("type") == self.pong_type:
                    self.pong.set_result(None)

    @property
    def open(self) -> bool:
        return not self.reader.done()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


@dataclass
class Phase:
    """What one server did with N idle connections."""

    label: str
    n: int
    opened: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    open_s: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    rss_peak_hold_kib: int = 0
    rss_end_hold_kib: int = 0
    rss_closed_kib: int = 0
    still_open: int = 0
    pongs: int = 0
    pong_s: float = 0.0
    server_cpu_open_s: float = 0.0
    client_cpu_open_s: float = 0.0
    server_cpu_hold_share: float = 0.0
    frames_during_hold: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_connection_kib(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.opened if self.opened else 0.0

    def lines(self) -> list[str]:
        failed = ", ".join(f"{k}×{v}" for k, v in self.failures.most_common()) or "none"
        return [
            f"[{self.label}] opened {self.opened}/{self.n} in {self.open_s:.1f} s "
            f"({self.opened / self.open_s if self.open_s else 0:.0f}/s); failures: {failed}",
            f"[{self.label}]   CPU while opening: server {self.server_cpu_open_s:.1f} s "
            f"({self.server_cpu_open_s / max(1, self.opened) * 1000:.2f} ms per connection), "
            f"client {self.client_cpu_open_s:.1f} s"
            + (
                f"; Postgres commits {commits} ({commits / max(1, self.opened):.1f} per connection)"
                if (commits := self.extra.get("db_commits_opening")) is not None
                else ""
            ),
            f"[{self.label}]   server RSS {self.rss_before_kib / 1024:.1f} MiB before -> "
            f"{self.rss_after_kib / 1024:.1f} MiB with {self.opened} open = "
            f"{self.per_connection_kib:.1f} KiB per connection",
            f"[{self.label}]   idle hold: RSS peak {self.rss_peak_hold_kib / 1024:.1f} MiB, end "
            f"{self.rss_end_hold_kib / 1024:.1f} MiB; still open {self.still_open}/{self.opened};"
            f" {self.frames_during_hold} frames received while idle; server CPU while idle "
            f"{self.server_cpu_hold_share:.0%} of a core",
            f"[{self.label}]   liveness: {self.pongs}/{self.opened} answered a ping "
            f"(all within {self.pong_s:.2f} s)",
            f"[{self.label}]   after closing all: RSS {self.rss_closed_kib / 1024:.1f} MiB",
        ]


def _client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _open_one(url: str, wanted: str, pong_type: str) -> IdleClient:
    ws = await connect(url, open_timeout=120, compression=None, max_size=2**16)
    try:
        await ws.send(HELLO)
        while True:
            raw = await asyncio.wait_for(ws.recv(), 120)
            if wanted in str(raw) and json.loads(raw).get("type") == wanted:
                break
    except BaseException:
        await ws.close()
        raise
    return IdleClient(ws, pong_type)


async def open_many(
    url: str, n: int, concurrency: int, *, wanted: str, pong_type: str, phase: Phase
) -> list[IdleClient]:
    clients: list[IdleClient] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            try:
                clients.append(await _open_one(url, wanted, pong_type))
            except Exception as exc:  # counted and reported, never silently dropped
                phase.failures[type(exc).__name__] += 1

    await asyncio.gather(*(one() for _ in range(n)))
    return clients


async def measure(
    phase: Phase,
    pid: int,
    url: str,
    *,
    wanted: str,
    pong_type: str,
    hold_s: float,
    concurrency: int,
    on_open: Callable[[], Awaitable[None]] | None = None,
    db_commits: Callable[[], Awaitable[int]] | None = None,
) -> None:
    warm = await open_many(url, WARM_UP, WARM_UP, wanted=wanted, pong_type=pong_type, phase=phase)
    for client in warm:
        await client.close()
    phase.failures.clear()
    await asyncio.sleep(2)
    phase.rss_before_kib = rss_kib(pid)

    commits = await db_commits() if db_commits is not None else 0
    cpu_server, cpu_client = cpu_s(pid), _client_cpu_s()
    started = time.perf_counter()
    clients = await open_many(
        url, phase.n, concurrency, wanted=wanted, pong_type=pong_type, phase=phase
    )
    phase.open_s = time.perf_counter() - started
    phase.server_cpu_open_s = cpu_s(pid) - cpu_server
    phase.client_cpu_open_s = _client_cpu_s() - cpu_client
    phase.opened = len(clients)
    if on_open is not None:
        await on_open()
    await asyncio.sleep(2)  # let the server's post-open work (queue refresh, hints) settle
    if db_commits is not None:
        # Counted over the open and the settling after it; Postgres flushes the counters ~1/s.
        phase.extra["db_commits_opening"] = await db_commits() - commits
    phase.rss_after_kib = rss_kib(pid)

    frames_before = sum(c.frames for c in clients)
    cpu_server, hold_started = cpu_s(pid), time.perf_counter()
    deadline = hold_started + hold_s
    peak = phase.rss_after_kib
    while (left := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(min(1.0, left))
        peak = max(peak, rss_kib(pid))
    phase.rss_peak_hold_kib = peak
    phase.server_cpu_hold_share = (cpu_s(pid) - cpu_server) / (time.perf_counter() - hold_started)
    phase.rss_end_hold_kib = rss_kib(pid)
    phase.still_open = sum(c.open for c in clients)
    phase.frames_during_hold = sum(c.frames for c in clients) - frames_before

    started = time.perf_counter()
    alive = [c for c in clients if c.open]
    for client in alive:
        with contextlib.suppress(Exception):
            await client.ws.send(PING)
    if alive:
        await asyncio.wait([c.pong for c in alive], timeout=60)
    phase.pong_s = time.perf_counter() - started
    phase.pongs = sum(c.pong.done() for c in clients)

    await asyncio.gather(*(c.close() for c in clients))
    await asyncio.sleep(3)
    phase.rss_closed_kib = rss_kib(pid)


async def _db_commits(url: str) -> int:
    """Committed transactions in the bench database so far (the server's and background work)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        count: int = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return count


async def main(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_fd_limit(args.n * 2 + 1024)  # inherited by the server children
    if limit < args.n + 256:
        sys.exit(f"open-file limit {limit} is too low for {args.n} connections (raise ulimit -n)")
    print(
        f"n={args.n} hold={args.hold:.0f}s concurrency={args.concurrency} fd limit={limit} "
        f"(client, server and Postgres share {os.cpu_count()} cores)"
    )
    echo = Phase("echo", args.n)
    port = free_port()
    env = dict(os.environ)
    with child(echo_server_args(port, *UVICORN_WS_FLAGS), env, port) as proc:
        await measure(
            echo,
            proc.pid,
            f"ws://127.0.0.1:{port}/echo",
            wanted="hello",
            pong_type="ping",
            hold_s=min(args.hold, 5.0),
            concurrency=args.concurrency,
        )
    for line in echo.lines():
        print(line, flush=True)

    chat = Phase("beacon", args.n)
    async with fresh_database(args.admin_url) as url:
        env = beacon_env(url)
        await asyncio.to_thread(beacon, ["db", "upgrade"], env)
        port = free_port()
        with child(serve_args(port), env, port, ready_path="/healthz") as proc:

            async def server_count() -> None:
                async with httpx.AsyncClient() as http:
                    page = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                chat.extra["server_connected_visitors"] = metric_sample(
                    page, "beacon_connected_visitors"
                )

            await measure(
                chat,
                proc.pid,
                f"ws://127.0.0.1:{port}/v1/chat",
                wanted="session",
                pong_type="pong",
                hold_s=args.hold,
                concurrency=args.concurrency,
                on_open=server_count,
                db_commits=lambda: _db_commits(url),
            )
            alive = proc.poll() is None
    for line in chat.lines():
        print(line)
    print(
        f"[beacon]   server's own count of open visitor sockets: "
        f"{chat.extra.get('server_connected_visitors')}; server alive at the end: {alive}"
    )
    ratio = chat.per_connection_kib / echo.per_connection_kib if echo.per_connection_kib else None
    print(
        f"memory per idle connection: beacon {chat.per_connection_kib:.1f} KiB vs bare uvicorn "
        f"echo {echo.per_connection_kib:.1f} KiB -> ratio {ratio:.2f}"
        if ratio is not None
        else "memory per idle connection: echo baseline grew by nothing measurable"
    )
    summary: dict[str, Any] = {
        "bench": "idle_connections",
        "n": args.n,
        "opened": chat.opened,
        "open_s": round(chat.open_s, 2),
        "still_open_after_hold": chat.still_open,
        "pongs": chat.pongs,
        "kib_per_connection": round(chat.per_connection_kib, 1),
        "echo_kib_per_connection": round(echo.per_connection_kib, 1),
        "ratio_to_echo": None if ratio is None else round(ratio, 2),
        "rss_mib": round(chat.rss_end_hold_kib / 1024, 1),
        "idle_cpu_share": round(chat.server_cpu_hold_share, 3),
        # Server CPU spent opening them (handshake + hello -> session), per connection.
        "open_cpu_ms_per_connection": round(chat.server_cpu_open_s / max(1, chat.opened) * 1000, 3),
        "echo_open_cpu_ms_per_connection": round(
            echo.server_cpu_open_s / max(1, echo.opened) * 1000, 3
        ),
    }
    print(summary_line(summary))
    return summary


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_connections", description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--hold", type=float, default=30.0, help="idle seconds (default 30)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--admin-url", default=default_admin_url())
    args = parser.parse_args()
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
