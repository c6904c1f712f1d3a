"""Visitor chat end to end: message -> durable group commit -> triage -> ack (and -> delivery to a
second socket on the session, as a volunteer's would be), against `beacon serve` on Postgres, with
a bare uvicorn WebSocket echo measured in the same run as the baseline.

Phases (each client has its own connection; chat clients each have their own session):

1. echo saturation   — N clients, closed loop (send, wait for the echo, repeat) for S seconds;
   durable echo      — the same against bench/durable_echo.py, which group-commits every frame
                       to Postgres before echoing it (the ceiling for any durable chat here);
2. chat saturation   — N clients, closed loop (send a message, wait for its ack) for S seconds;
3. chat at R msg/s   — the same N sessions paced to R messages/s in total, each also watched by
                       a second socket that receives the messages live over the bus: ack latency
                       and delivery latency, measured from the scheduled send time.

    .venv/bin/python -m bench.chat_e2e [--clients 100] [--seconds 10] [--rate 500] [--text ...]
                                       [--admin-url postgresql+asyncpg://postgres@127.0.0.1/postgres]

Both servers run as child processes (one uvicorn worker each); the load generator is this
process. On the 2-core reference machine the three share the CPU with Postgres, so the absolute
numbers are a floor; the ratio to the echo is the figure to compare across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench import durable_echo
from bench._common import (
    BEACON,
    ROOT,
    add_volunteer,
    asyncpg_dsn,
    beacon_env,
    child,
    default_admin_url,
    echo_server_args,
    free_port,
    fresh_database,
    metric_sample,
    summary_line,
)

# -- load ----------------------------------------------------------------------------------------


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def line(self, label: str) -> str:
        return (
            f"{label:<34} {self.throughput:>9.0f}/s   p50 {self.pct(50):7.2f} ms   "
            f"p99 {self.pct(99):7.2f} ms   max {max(self.latencies_ms, default=0):7.1f} ms   "
            f"n={len(self.latencies_ms)}"
        )


async def _recv_json(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


class ChatClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.token = ""
        self.session_id = ""
        self.acks: dict[str, asyncio.Future[float]] = {}
        self.seqs: dict[str, int] = {}  # client_msg_id -> the seq its ack gave it
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, base: str, token: str | None = None) -> ChatClient:
        client = cls(await connect(f"{base}/v1/chat", max_size=2**20))
        await client.ws.send(json.dumps({"type": "hello", "resume_token": token, "last_seq": 0}))
        while (frame := await _recv_json(client.ws))["type"] != "session":
            pass
        client.token = frame["resume_token"]
        client.session_id = frame["session_id"]
        client.reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame["type"] == "ack":
                    self.seqs[frame["client_msg_id"]] = frame["seq"]
                    future = self.acks.pop(frame["client_msg_id"], None)
                    if future is not None and not future.done():
                        future.set_result(time.perf_counter())
                elif frame["type"] == "error":
                    print("error frame:", frame, file=sys.stderr)

    async def send(self, text: str) -> float:
        cid = uuid.uuid4().hex
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.acks[cid] = future
        await self.ws.send(json.dumps({"type": "message", "client_msg_id": cid, "text": text}))
        return await future

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()


class Observer:
    """A second socket on a session: records when each visitor message arrives live."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.arrived: dict[str, float] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame["type"] == "message" and frame.get("client_msg_id"):
                    self.arrived[frame["client_msg_id"]] = time.perf_counter()


class Counselor:
    """A volunteer's socket holding some of the chats: records when each visitor message
    arrives on it (by session and seq: the volunteer's frames carry no client_msg_id)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.held: set[str] = set()
        self.arrived: dict[tuple[str, int], float] = {}
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def sign_in(cls, base: str, token: str) -> Counselor:
        counselor = cls(await connect(f"{base}/v1/volunteer", max_size=2**20))
        await counselor.ws.send(json.dumps({"type": "auth", "token": token}))
        while (await _recv_json(counselor.ws))["type"] != "ready":
            pass
        counselor.task = asyncio.create_task(counselor._read())
        return counselor

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "message" and frame.get("sender") == "visitor":
                    key = (frame["session_id"], frame["seq"])
                    self.arrived.setdefault(key, time.perf_counter())
                elif kind == "offer":
                    accept = {"type": "accept", "session_id": frame["session_id"]}
                    await self.ws.send(json.dumps(accept))
                elif kind == "assigned":
                    self.held.add(frame["session_id"])

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.ws.close()


async def staff(
    base: str, env: dict[str, str], sessions: int, per_volunteer: int = 10
) -> list[Counselor]:
    """Volunteers enough to hold every waiting chat (``per_volunteer`` each), signed in; returns
    once every chat is assigned (the router offers them, each counselor accepts). Capacity is
    twice that: a chat at high or above takes two slots, and the engine rates
    ``SATURATION_TEXT`` imminent (a false alarm, docs/performance.md)."""
    count = -(-sessions // per_volunteer)
    accounts = [
        await asyncio.to_thread(add_volunteer, env, f"bench-{i}", capacity=2 * per_volunteer)
        for i in range(count)
    ]
    counselors = [await Counselor.sign_in(base, a["token"]) for a in accounts]
    async with asyncio.timeout(60):
        while sum(len(c.held) for c in counselors) < sessions:  # noqa: ASYNC110 - client poll
            await asyncio.sleep(0.05)
    return counselors


async def closed_loop(
    clients: int, seconds: float, one_round_trip: Callable[[int], Awaitable[float]]
) -> Result:
    """Each client: send, wait for the reply, repeat. Returns every round-trip latency."""
    result = Result()
    stop = time.perf_counter() + seconds
    started = time.perf_counter()

    async def run(i: int) -> None:
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            replied = await one_round_trip(i)
            result.latencies_ms.append((replied - sent) * 1000)

    await asyncio.gather(*(run(i) for i in range(clients)))
    result.elapsed_s = time.perf_counter() - started
    return result


async def echo_phase(base: str, clients: int, seconds: float) -> Result:
    """Closed-loop round trips on ``base``/echo (the plain or the durable echo)."""
    sockets = [await connect(f"{base}/echo") for _ in range(clients)]
    payload = json.dumps({"type": "message", "client_msg_id": "x" * 32, "text": "hello " * 8})

    async def round_trip(i: int) -> float:
        await sockets[i].send(payload)
        await sockets[i].recv()
        return time.perf_counter()

    await closed_loop(clients, 1.0, round_trip)  # warm up
    result = await closed_loop(clients, seconds, round_trip)
    for ws in sockets:
        await ws.close()
    return result


SATURATION_TEXT = "I just need someone to talk to tonight, it's been hard"
PACED_TEXT = "still here?"


class FreshTexts:
    """Every message a text the server has not read before: the dev split's chat lines in turn,
    each with its running number, so that triage reads and encodes each one (a repeated text is
    read once and then comes from the engine's cache, which prices no encoder at all)."""

    def __init__(self) -> None:
        from app.triage.corpus import DEV_JSONL, read_jsonl

        self._lines = [row.text for row in read_jsonl(DEV_JSONL) if len(row.text.split()) < 30]
        self._count = 0

    def __call__(self) -> str:
        self._count += 1
        return f"{self._lines[self._count % len(self._lines)]} ({self._count})"


def _same(text: str) -> Callable[[], str]:
    return lambda: text


async def chat_saturation(
    base: str,
    clients: list[ChatClient],
    seconds: float,
    text: Callable[[], str] | None = None,
) -> Result:
    next_text = text or _same(SATURATION_TEXT)

    async def round_trip(i: int) -> float:
        return await clients[i].send(next_text())

    await closed_loop(len(clients), 1.0, round_trip)  # warm up
    return await closed_loop(len(clients), seconds, round_trip)


async def chat_paced(
    base: str,
    clients: list[ChatClient],
    seconds: float,
    rate: float,
    counselors: Sequence[Counselor] = (),
    text: Callable[[], str] | None = None,
) -> tuple[Result, Result, Result]:
    next_text = text or _same(PACED_TEXT)
    observers = []
    for client in clients:
        ws = await connect(f"{base}/v1/chat")
        await ws.send(json.dumps({"type": "hello", "resume_token": client.token, "last_seq": 0}))
        while (await _recv_json(ws))["type"] != "status":
            pass
        observers.append(Observer(ws))
    ack = Result()
    sent_at: dict[str, tuple[int, float]] = {}
    interval = len(clients) / rate
    started = time.perf_counter()

    async def run(i: int) -> None:
        client = clients[i]
        due = started + random.random() * interval
        while due < started + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            cid = uuid.uuid4().hex
            future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            client.acks[cid] = future
            sent_at[cid] = (i, due)
            await client.ws.send(
                json.dumps({"type": "message", "client_msg_id": cid, "text": next_text()})
            )
            ack.latencies_ms.append((await future - due) * 1000)
            due += interval

    await asyncio.gather(*(run(i) for i in range(len(clients))))
    ack.elapsed_s = time.perf_counter() - started
    await asyncio.sleep(0.5)

    def arrivals(where: str, arrived: Callable[[int, str], float | None]) -> Result:
        """Each message's time from its scheduled send to its arrival ``where``."""
        result = Result(elapsed_s=ack.elapsed_s)
        for cid, (i, due) in sent_at.items():
            at = arrived(i, cid)
            if at is not None:
                result.latencies_ms.append((at - due) * 1000)
        if missing := len(sent_at) - len(result.latencies_ms):
            print(f"!! {missing} messages never reached {where}", file=sys.stderr)
        return result

    delivery = arrivals("the observing socket", lambda i, cid: observers[i].arrived.get(cid))
    to_counselor = Result(elapsed_s=ack.elapsed_s)
    if counselors:
        # The volunteer's frames carry no client_msg_id: matched by session and acked seq.
        on_volunteers = {k: v for c in counselors for k, v in c.arrived.items()}

        def on_volunteer(i: int, cid: str) -> float | None:
            seq = clients[i].seqs.get(cid)
            return None if seq is None else on_volunteers.get((clients[i].session_id, seq))

        to_counselor = arrivals("the volunteer's socket", on_volunteer)
    for observer in observers:
        observer.task.cancel()
        await observer.ws.close()
    return ack, delivery, to_counselor


async def _commit_paths(port: int) -> dict[str, float]:
    """The server's group commits so far, by path (one statement, locked, missed)."""
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        path: metric_sample(metrics, f'beacon_chat_commits_total{{path="{path}"}}') or 0.0
        for path in ("one_statement", "locked", "missed")
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database(args.admin_url) as url, fresh_database(args.admin_url) as echo_db:
        env = beacon_env(
            url, ws_rate_limit_per_s="100000", ws_rate_limit_burst="100000", db_pool_size="10"
        )
        run = BEACON
        await asyncio.to_thread(
            subprocess.run,
            [*run, "db", "upgrade"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        chat_port, echo_port, durable_port = free_port(), free_port(), free_port()
        durable_env = {**env, durable_echo.DSN_ENV: asyncpg_dsn(echo_db)}
        with (
            child([*run, "serve", "--port", str(chat_port)], env, chat_port),
            child(echo_server_args(echo_port), env, echo_port),
            child(durable_echo.server_args(durable_port), durable_env, durable_port),
        ):
            chat_base, echo_base = f"ws://127.0.0.1:{chat_port}", f"ws://127.0.0.1:{echo_port}"
            print(
                f"clients={args.clients} seconds={args.seconds} rate={args.rate}/s "
                f"(servers, load generator and Postgres share {os.cpu_count()} cores)"
            )
            echo = await echo_phase(echo_base, args.clients, args.seconds)
            print(echo.line("echo round trip (baseline)"))
            durable_base = f"ws://127.0.0.1:{durable_port}"
            durable = await echo_phase(durable_base, args.clients, args.seconds)
            print(durable.line("durable echo round trip (ceiling)"))
            async with httpx.AsyncClient() as http:
                stats = (await http.get(f"http://127.0.0.1:{durable_port}/stats")).json()
            durable_per_commit = stats["frames"] / stats["commits"] if stats["commits"] else 0.0
            print(
                f"durable echo group commit: {stats['frames']} frames in {stats['commits']} "
                f"commits (mean {durable_per_commit:.1f} per commit, warm-up included)"
            )
            clients = [await ChatClient.open(chat_base) for _ in range(args.clients)]
            fresh = FreshTexts() if args.fresh_texts else None
            saturated = await chat_saturation(
                chat_base, clients, args.seconds, fresh or _same(args.text)
            )
            print(saturated.line("chat message -> ack (saturated)"))
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"http://127.0.0.1:{chat_port}/metrics")).text
            batches = metric_sample(metrics, "beacon_chat_commit_batch_size_count") or 0.0
            messages = metric_sample(metrics, "beacon_chat_commit_batch_size_sum") or 0.0
            chat_per_commit = messages / batches if batches else 0.0
            print(
                f"group commit: {messages:.0f} messages in {batches:.0f} commits "
                f"(mean {chat_per_commit:.1f} per commit, warm-up included)"
            )
            # Every chat held by a volunteer, as in a staffed shift: the message then also goes
            # to that volunteer's socket, which is what "time to counselor" is about.
            counselors = await staff(chat_base, env, len(clients))
            paths_before = await _commit_paths(chat_port)
            ack, delivery, to_counselor = await chat_paced(
                chat_base, clients, args.seconds, args.rate, counselors, fresh or _same(PACED_TEXT)
            )
            print(ack.line(f"chat message -> ack @ {args.rate:.0f}/s"))
            print(delivery.line(f"chat message -> other socket @ {args.rate:.0f}/s"))
            print(to_counselor.line(f"chat message -> volunteer @ {args.rate:.0f}/s"))
            for counselor in counselors:
                await counselor.close()
            paths = await _commit_paths(chat_port)
            print(
                f"group commits by path at {args.rate:.0f}/s: "
                + ", ".join(f"{p} {n - paths_before[p]:.0f}" for p, n in paths.items())
            )
            ratio = saturated.throughput / echo.throughput if echo.throughput else float("nan")
            durable_ratio = (
                saturated.throughput / durable.throughput if durable.throughput else float("nan")
            )
            print(f"saturation throughput ratio chat/echo: {ratio:.3f}")
            print(f"saturation throughput ratio chat/durable echo: {durable_ratio:.3f}")
            for client in clients:
                await client.close()
    summary: dict[str, Any] = {
        "bench": "chat_e2e",
        "clients": args.clients,
        "rate": args.rate,
        "ack_p99_ms": round(ack.pct(99), 2),
        "delivery_p99_ms": round(delivery.pct(99), 2),
        "volunteer_delivery_p99_ms": round(to_counselor.pct(99), 2),
        "chat_msgs_per_s": round(saturated.throughput, 1),
        "echo_msgs_per_s": round(echo.throughput, 1),
        "durable_echo_msgs_per_s": round(durable.throughput, 1),
        "ratio_to_echo": round(ratio, 4),
        "ratio_to_durable_echo": round(durable_ratio, 4),
        "chat_msgs_per_commit": round(chat_per_commit, 2),
        "durable_echo_frames_per_commit": round(durable_per_commit, 2),
    }
    print(summary_line(summary))
    return summary


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_e2e", description=__doc__)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument(
        "--text", default=SATURATION_TEXT, help="what the saturating clients say, every time"
    )
    parser.add_argument(
        "--fresh-texts",
        action="store_true",
        help="every message a new text (the dev split's chat lines, numbered) instead of one "
        "repeated text, which triage reads once and then caches",
    )
    parser.add_argument("--admin-url", default=default_admin_url())
    args = parser.parse_args()
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
