"""Imminent message -> offer on a free volunteer's socket (SPEC §10 target: p99 <= 100 ms), with
a ping -> pong round trip on the same volunteer socket, sampled in the same run, as the baseline.

What is measured, and why this way. A free volunteer is normally offered a session as soon as it
opens (see bench/routing_offer_latency.py for hello -> offer), before the visitor has typed
anything, so "imminent message -> offer" only means something for a session that is *waiting
while a volunteer is free*, and is offered *because* its urgency rose. In Beacon that happens
when nobody free speaks the visitor's language: a session waits for a volunteer with its language
(up to ``BEACON_LANGUAGE_FALLBACK_S``), except that `high` and `imminent` sessions go to anyone
free at once (docs/protocol.md, volunteer socket, "Routing"). So:

* one volunteer (`beacon volunteer add`, languages `en`, capacity 3) is connected, online and
  free; ``BEACON_LANGUAGE_FALLBACK_S`` is raised for the run so that language fallback never
  offers a session on its own;
* ``--queue`` other visitors with locale `fr` said something calm and wait for the whole run
  (a queue that the urgent person has to jump, and whose positions the server keeps pushing).
  What they say must stay `none` for the triage engine in the tree: were it rated `high`, the
  queue would be offered at once and no round would measure anything ("calm queue offered");
* each round, a new `fr` visitor says hello, waits ``--think-ms`` (a person typing; it also lets
  the work the hello started settle), checks that nothing was offered for their session, then
  sends an imminent message (SPEC §2's own example, "I took 30 pills just now"). Measured from
  just before that send to the arrival of the `offer` for that session on the volunteer socket:
  the visitor's group commit (triage, urgency rise and the conditional offer, one transaction
  since issue 13) -> the volunteer socket (in the same process: handed over when the COMMIT
  returns; the bus's NOTIFY carries it to other instances). Also recorded: the visitor's `ack`
  (durable commit) and the automated safety message (SPEC §5) on the visitor's socket;
* the volunteer accepts and closes the chat (disposition `other`, their risk assessment
  `imminent`), so they are free again for the next round; then one ping -> pong on the volunteer
  socket is timed, so the baseline sees the same server state.

The first ``--warmup`` rounds (cold caches, first triage model load) are left out. The level the
server gave each offer is printed: if the engine in the tree ever stops rating the text `high`
or above, no offer comes (by design of the measurement) and the bench says so.

    .venv/bin/python -m bench.imminent_offer [--n 200] [--queue 20] [--think-ms 150]
                                             [--text "..."] [--admin-url postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench._common import (
    add_volunteer,
    beacon,
    beacon_env,
    child,
    default_admin_url,
    free_port,
    fresh_database,
    pct,
    serve_args,
    summary_line,
)

IMMINENT_TEXT = "I took 30 pills just now"
CALM_TEXT = "hi, is anyone there?"  # must stay `none`: see the docstring
VISITOR_LOCALE = "fr"  # spoken by no connected volunteer
OFFER_TIMEOUT_S = 5.0


class Inbox:
    """A socket's frames, read by one task, each stamped on arrival and handed to whoever waits
    for it (by frame type and, where there is one, session id)."""

    def __init__(self, ws: ClientConnection, label: str, *, by_session: bool) -> None:
        self.ws = ws
        self.label = label
        # The volunteer socket multiplexes sessions; a visitor's frames all concern one.
        self.by_session = by_session
        self.errors: list[dict[str, Any]] = []
        self.seen: Counter[str] = Counter()
        self._waiters: dict[tuple[str, str | None], asyncio.Future[tuple[float, dict[str, Any]]]]
        self._waiters = {}
        self._early: dict[tuple[str, str | None], tuple[float, dict[str, Any]]] = {}
        self._pongs: deque[asyncio.Future[float]] = deque()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                arrived = time.perf_counter()
                frame = json.loads(raw)
                kind = str(frame.get("type"))
                self.seen[kind] += 1
                if kind == "pong":
                    while self._pongs:
                        future = self._pongs.popleft()
                        if not future.done():
                            future.set_result(arrived)
                            break
                    continue
                if kind == "error":
                    self.errors.append(frame)
                if kind == "message" and frame.get("kind") == "safety":
                    kind = "safety"
                key = (kind, frame.get("session_id") if self.by_session else None)
                waiter = self._waiters.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result((arrived, frame))
                elif key not in self._early:
                    self._early[key] = (arrived, frame)
        pending: list[asyncio.Future[Any]] = [*self._waiters.values(), *self._pongs]
        for future in pending:
            if not future.done():
                future.set_exception(ConnectionError(f"{self.label} socket closed"))

    def expect(
        self, kind: str, session_id: str | None = None
    ) -> asyncio.Future[tuple[float, dict[str, Any]]]:
        """A future for the next frame of this kind (for this session), arrival time first.
        Ask before causing the frame; a frame that came before anyone asked is kept."""
        future: asyncio.Future[tuple[float, dict[str, Any]]]
        future = asyncio.get_running_loop().create_future()
        key = (kind, session_id)
        if key in self._early:
            future.set_result(self._early.pop(key))
        else:
            self._waiters[key] = future
        return future

    def arrived_already(self, kind: str, session_id: str | None) -> bool:
        return (kind, session_id) in self._early

    def forget(self, session_id: str) -> None:
        for key in [k for k in self._early if k[1] == session_id]:
            del self._early[key]

    async def ping(self, frame: str) -> float:
        """Round trip of one app-level ping, in ms."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pongs.append(future)
        sent = time.perf_counter()
        await self.ws.send(frame)
        return (await asyncio.wait_for(future, OFFER_TIMEOUT_S) - sent) * 1000

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def open_visitor(base: str, text: str | None) -> tuple[Inbox, str]:
    """A new visitor session (locale fr), waiting; optionally with one message sent and acked."""
    ws = await connect(f"{base}/v1/chat", compression=None)
    inbox = Inbox(ws, "visitor", by_session=False)
    session = inbox.expect("session")
    status = inbox.expect("status")
    await ws.send(json.dumps({"type": "hello", "locale": VISITOR_LOCALE}))
    _, frame = await asyncio.wait_for(session, 10)
    await asyncio.wait_for(status, 10)
    if text is not None:
        ack = inbox.expect("ack")
        await ws.send(json.dumps({"type": "message", "client_msg_id": "m1", "text": text}))
        await asyncio.wait_for(ack, 10)
    return inbox, str(frame["session_id"])


@dataclass
class Rounds:
    offer_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    safety_ms: list[float] = field(default_factory=list)
    pong_ms: list[float] = field(default_factory=list)
    levels: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)
    offered_before_message: int = 0
    no_offer: int = 0
    no_safety: int = 0


async def one_round(
    base: str, volunteer: Inbox, text: str, think_s: float, rounds: Rounds, record: bool
) -> None:
    visitor, session_id = await open_visitor(base, None)
    try:
        await asyncio.sleep(think_s)
        if volunteer.arrived_already("offer", session_id):
            # The language gate did not hold: this round would not measure urgency routing.
            rounds.offered_before_message += 1
        volunteer.forget(session_id)
        offer = volunteer.expect("offer", session_id)
        ack = visitor.expect("ack")
        safety = visitor.expect("safety")
        sent = time.perf_counter()
        await visitor.ws.send(
            json.dumps({"type": "message", "client_msg_id": uuid.uuid4().hex, "text": text})
        )
        acked, _ = await asyncio.wait_for(ack, 10)
        try:
            offered, frame = await asyncio.wait_for(offer, OFFER_TIMEOUT_S)
        except TimeoutError:
            rounds.no_offer += 1
            return
        try:
            safe_at, _ = await asyncio.wait_for(safety, OFFER_TIMEOUT_S)
        except TimeoutError:
            safe_at = None
        if record:
            rounds.offer_ms.append((offered - sent) * 1000)
            rounds.ack_ms.append((acked - sent) * 1000)
            if safe_at is None:
                rounds.no_safety += 1
            else:
                rounds.safety_ms.append((safe_at - sent) * 1000)
            rounds.levels[str(frame.get("urgency"))] += 1
            rounds.signals.update(frame.get("signals") or [])
        assigned = volunteer.expect("assigned", session_id)
        await volunteer.ws.send(json.dumps({"type": "accept", "session_id": session_id}))
        await asyncio.wait_for(assigned, 10)
        await volunteer.ws.send(
            json.dumps(
                {
                    "type": "close",
                    "session_id": session_id,
                    "disposition": "other",
                    "risk_level": "imminent",
                }
            )
        )
        await asyncio.wait_for(visitor.task, 10)  # the server ends the chat: closed, 1000
    finally:
        await visitor.close()
        volunteer.forget(session_id)
    pong = await volunteer.ping(json.dumps({"type": "ping"}))
    if record:
        rounds.pong_ms.append(pong)


def _dist(label: str, values: list[float]) -> str:
    return (
        f"{label:<44} p50 {pct(values, 50):7.2f}  p95 {pct(values, 95):7.2f}  "
        f"p99 {pct(values, 99):7.2f}  max {max(values, default=float('nan')):7.2f} ms  "
        f"n={len(values)}"
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database(args.admin_url) as url:
        # A real dashboard sends a few frames a minute; this one runs a chat every ~0.3 s.
        env = beacon_env(
            url,
            language_fallback_s="86400",
            ws_rate_limit_per_s="1000",
            ws_rate_limit_burst="1000",
        )
        await asyncio.to_thread(beacon, ["db", "upgrade"], env)
        account = await asyncio.to_thread(add_volunteer, env, "bench-volunteer", languages="en")
        port = free_port()
        with child(serve_args(port), env, port, ready_path="/healthz") as proc:
            base = f"ws://127.0.0.1:{port}"
            queue = [await open_visitor(base, CALM_TEXT) for _ in range(args.queue)]
            ws = await connect(f"{base}/v1/volunteer", compression=None)
            volunteer = Inbox(ws, "volunteer", by_session=True)
            ready = volunteer.expect("ready")
            await ws.send(json.dumps({"type": "auth", "token": account["token"]}))
            await asyncio.wait_for(ready, 10)
            # Make sure the calm queue really is not offered to this volunteer.
            await asyncio.sleep(1.5)
            offered_calm = volunteer.seen["offer"]
            print(
                f"n={args.n} (+{args.warmup} warm-up) queue={args.queue} waiting `fr` visitors, "
                f"think={args.think_ms:.0f} ms, text={args.text!r} "
                f"(client, server and Postgres share {os.cpu_count()} cores)"
            )
            rounds = Rounds()
            started = time.perf_counter()
            for i in range(args.warmup + args.n):
                try:
                    await one_round(
                        base, volunteer, args.text, args.think_ms / 1000, rounds, i >= args.warmup
                    )
                except TimeoutError:
                    raise SystemExit(
                        f"round {i}: the server did not answer in time; volunteer error frames: "
                        f"{volunteer.errors[-3:]}"
                    ) from None
            elapsed = time.perf_counter() - started
            alive = proc.poll() is None
            errors = list(volunteer.errors)
            await volunteer.close()
            for inbox, _ in queue:
                await inbox.close()

    print(_dist("imminent message -> offer on volunteer socket", rounds.offer_ms))
    print(_dist("imminent message -> ack (durable commit)", rounds.ack_ms))
    print(_dist("imminent message -> safety message to visitor", rounds.safety_ms))
    print(_dist("baseline: volunteer ping -> pong", rounds.pong_ms))
    p99_ratio = pct(rounds.offer_ms, 99) / pct(rounds.pong_ms, 99)
    p50_ratio = pct(rounds.offer_ms, 50) / pct(rounds.pong_ms, 50)
    print(f"ratio offer/ping-pong: p50 {p50_ratio:.1f}x, p99 {p99_ratio:.1f}x")
    print(
        "urgency the server offered: "
        + (", ".join(f"{k}×{v}" for k, v in rounds.levels.most_common()) or "none")
        + "; signals: "
        + (", ".join(f"{k}×{v}" for k, v in rounds.signals.most_common(6)) or "none")
    )
    print(
        f"rounds: {args.warmup + args.n} in {elapsed:.1f} s; no offer within "
        f"{OFFER_TIMEOUT_S:.0f} s: {rounds.no_offer} (text not rated high+?); offered before the "
        f"message: {rounds.offered_before_message}; no safety message: {rounds.no_safety}; "
        f"calm queue offered: {offered_calm}; volunteer error frames: {len(errors)}; "
        f"server alive: {alive}"
    )
    for error in errors[:5]:
        print("  volunteer error:", error)
    summary: dict[str, Any] = {
        "bench": "imminent_offer",
        "n": len(rounds.offer_ms),
        "p50_ms": round(pct(rounds.offer_ms, 50), 2),
        "p95_ms": round(pct(rounds.offer_ms, 95), 2),
        "p99_ms": round(pct(rounds.offer_ms, 99), 2),
        "max_ms": round(max(rounds.offer_ms, default=float("nan")), 2),
        "pong_p99_ms": round(pct(rounds.pong_ms, 99), 2),
        "p99_ratio_to_pong": round(p99_ratio, 1),
        "levels": dict(rounds.levels),
        "no_offer": rounds.no_offer,
    }
    print(summary_line(summary))
    return summary


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.imminent_offer", description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=5, help="rounds left out of the figures")
    parser.add_argument("--queue", type=int, default=20, help="calm visitors waiting throughout")
    parser.add_argument("--think-ms", type=float, default=150.0, help="hello -> message pause")
    parser.add_argument("--text", default=IMMINENT_TEXT)
    parser.add_argument("--admin-url", default=default_admin_url())
    args = parser.parse_args()
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
