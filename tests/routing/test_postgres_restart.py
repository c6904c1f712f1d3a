"""Postgres restarted for real under two instances: visitors on one, their volunteer on the
other. Both bus listeners lose their connection and resync; the volunteer's socket must still
get every message of every chat it holds once, in order, and nothing acked may be lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from app.bus import PostgresBus
from app.core.db import create_engine
from tests import pg
from tests.routing.conftest import FAST, World
from tests.routing.wsclient import Frame, VolunteerClient, about

MESSAGES = 40
_RETRYABLE = (ConnectionClosed, OSError, TimeoutError, InvalidHandshake, InvalidStatus)


@dataclass
class Talker:
    """A visitor that keeps talking through the outage: an unacked message (an error frame, a
    dropped socket) is resent with the same client_msg_id, after resuming if need be."""

    ws_url: str
    name: str
    token: str | None = None
    session_id: str = ""
    last_seq: int = 0
    acked: dict[str, int] = field(default_factory=dict)
    refusals: int = 0
    reconnects: int = 0

    async def open(self, first_text: str) -> None:
        await self._run([first_text])

    async def talk(self, texts: list[str], pause_s: float) -> None:
        await self._run(texts, pause_s)

    async def _run(self, texts: list[str], pause_s: float = 0.0) -> None:
        pending = [(f"{self.name}-{len(self.acked) + i}", t) for i, t in enumerate(texts)]
        async with asyncio.timeout(120):
            while pending:
                try:
                    async with connect(f"{self.ws_url}/v1/chat", open_timeout=5) as ws:
                        await self._hello(ws)
                        while pending:
                            cid, text = pending[0]
                            if await self._send(ws, cid, text):
                                pending.pop(0)
                                await asyncio.sleep(pause_s)
                            else:
                                self.refusals += 1
                                await asyncio.sleep(0.2)
                except _RETRYABLE:
                    self.reconnects += 1
                    await asyncio.sleep(0.2)

    async def _hello(self, ws: Any) -> None:
        hello = {"type": "hello", "resume_token": self.token, "last_seq": self.last_seq}
        await ws.send(json.dumps(hello))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == "session":
                self.token, self.session_id = frame["resume_token"], frame["session_id"]
                return
            if frame["type"] == "error":
                raise ConnectionClosed(None, None)  # e.g. 1013 at hello: try again

    async def _send(self, ws: Any, cid: str, text: str) -> bool:
        await ws.send(json.dumps({"type": "message", "client_msg_id": cid, "text": text}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if frame["type"] == "message":
                self.last_seq = max(self.last_seq, frame["seq"])
            if frame.get("client_msg_id") != cid:
                continue
            if frame["type"] == "ack":
                self.acked[cid] = frame["seq"]
                self.last_seq = max(self.last_seq, frame["seq"])
                return True
            if frame["type"] == "message":  # our own, replayed after a resume: it is stored
                self.acked[cid] = frame["seq"]
                return True
            assert frame["type"] == "error", frame
            assert frame["code"] == "temporarily_unavailable", frame
            return False


async def _read_all(client: VolunteerClient) -> None:
    """Everything the volunteer's one connection receives lands in ``client.seen``."""
    with contextlib.suppress(ConnectionClosed):
        async for raw in client.ws:
            client.seen.append(json.loads(raw))


async def _keep_alive(client: VolunteerClient) -> None:
    while True:
        await asyncio.sleep(2)
        await client.send({"type": "ping"})


def _message_seqs(frames: list[Frame], session_id: str) -> list[int]:
    return [
        f["seq"] for f in frames if f.get("type") == "message" and f["session_id"] == session_id
    ]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_volunteer_socket_never_repeats_a_seq_across_postgres_restarts(
    restartable_database: tuple[str, pg.PgCluster],
    live_server_factory: Callable[..., Any],
) -> None:
    url, cluster = restartable_database
    overrides = {**FAST, "database_url": url, "offer_timeout_s": 10.0}
    visitors_side = await live_server_factory(**overrides)
    volunteers_side = await live_server_factory(**overrides)
    world = World(volunteers_side)
    account = await world.volunteer(capacity=8)
    volunteer = await VolunteerClient.connect(volunteers_side.ws_url, account.token)
    talkers = [Talker(visitors_side.ws_url, f"t{i}") for i in range(6)]
    for talker in talkers:
        await talker.open("hello, is anyone there?")
    for _ in talkers:
        offer = await volunteer.expect("offer", within=15)
        await volunteer.send({"type": "accept", "session_id": offer["session_id"]})
        await volunteer.expect("assigned", about(offer["session_id"]))
    buses = [server.app.state.beacon.bus for server in (visitors_side, volunteers_side)]
    reader = asyncio.create_task(_read_all(volunteer))
    pinger = asyncio.create_task(_keep_alive(volunteer))
    talking = asyncio.gather(
        *(
            t.talk([f"message {k} from {t.name}" for k in range(MESSAGES)], pause_s=0.05)
            for t in talkers
        )
    )
    try:
        restarts = 0
        async with asyncio.timeout(120):
            for threshold in (MESSAGES // 4, MESSAGES // 2):
                # Restart while every visitor is mid-conversation.
                while min(len(t.acked) for t in talkers) < threshold:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(cluster.restart, "fast")
                restarts += 1
                # Each restart must be one the buses noticed and recovered from on its own.
                while min(bus.reconnects for bus in buses) < restarts:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            await talking
        assert restarts == 2
        # Wait until the volunteer has heard each chat's last acked message, then a little
        # longer for anything that would arrive twice.
        async with asyncio.timeout(60):
            for talker in talkers:
                last = max(talker.acked.values())
                while last not in _message_seqs(volunteer.seen, talker.session_id):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)
    finally:
        talking.cancel()
        pinger.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinger
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await volunteer.close()
    duplicates: dict[str, list[int]] = {}
    for talker in talkers:
        seqs = _message_seqs(volunteer.seen, talker.session_id)
        repeated = sorted({s for s in seqs if seqs.count(s) > 1})
        if repeated:
            duplicates[talker.name] = repeated
    assert duplicates == {}, f"seqs delivered twice on one volunteer connection: {duplicates}"
    for talker in talkers:
        acked = set(talker.acked.values())
        assert len(acked) == len(talker.acked) == MESSAGES + 1, talker.name
        # Every message of the chat - the visitor's, and any system message triage added -
        # reached the volunteer once, in seq order, without gaps; every acked one among them.
        seqs = _message_seqs(volunteer.seen, talker.session_id)
        assert seqs == list(range(1, max(seqs) + 1)), talker.name
        assert acked <= set(seqs), talker.name
    print(
        "restarts",
        restarts,
        "refused sends",
        sum(t.refusals for t in talkers),
        "visitor reconnects",
        sum(t.reconnects for t in talkers),
        "bus reconnects",
        [bus.reconnects for bus in buses],
    )


async def test_volunteer_socket_stays_open_through_a_database_outage(
    restartable_database: tuple[str, pg.PgCluster],
    live_server_factory: Callable[..., Any],
) -> None:
    # Found by the test above: a frame whose database call found Postgres refusing connections
    # (an OSError, not a DBAPIError) killed the handler, and the volunteer saw 1006.
    url, cluster = restartable_database
    server = await live_server_factory(**{**FAST, "database_url": url})
    account = await World(server).volunteer()
    volunteer = await VolunteerClient.connect(server.ws_url, account.token)
    await volunteer.expect("queue")  # sent once the link has read its state: fully started
    await asyncio.to_thread(cluster.stop)
    try:
        for frame in (
            {"type": "next"},
            {"type": "presence", "status": "away"},
            {"type": "sync", "session_id": "00000000-0000-4000-8000-000000000000", "last_seq": 0},
        ):
            await volunteer.send(frame)
            error = await volunteer.expect("error", within=15)
            assert error["code"] == "temporarily_unavailable", (frame, error)
        # A new socket cannot authenticate meanwhile: told so and closed, not dropped.
        async with connect(f"{server.ws_url}/v1/volunteer", open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "auth", "token": account.token}))
            refused = json.loads(await asyncio.wait_for(ws.recv(), 15))
            assert refused["code"] == "temporarily_unavailable"
            with contextlib.suppress(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 15)
            assert ws.close_code == 1013
    finally:
        await asyncio.to_thread(cluster.start)
    await volunteer.send({"type": "presence", "status": "online"})
    assert (await volunteer.expect("presence", within=15))["status"] == "online"
    await volunteer.close()


async def test_every_bus_listener_comes_back_after_each_of_many_restarts(
    restartable_database: tuple[str, pg.PgCluster],
) -> None:
    # Found by the first test: a health check on the connection the server had just dropped
    # raised asyncpg's InternalClientError, which the watchdog did not expect - it died, and
    # that instance never heard another instance again. Frequent health checks on several
    # buses make such a check coincide with a restart.
    url, cluster = restartable_database
    engine = create_engine(url, pool_size=2)
    buses = [PostgresBus(database_url=url, engine=engine, health_interval_s=0.05) for _ in range(6)]
    for bus in buses:
        await bus.start()
    try:
        for restart in range(1, 9):
            await asyncio.to_thread(cluster.restart, "fast")
            async with asyncio.timeout(30):
                while min(bus.reconnects for bus in buses) < restart:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        subscriptions = [bus.subscribe("after-restarts") for bus in buses]
        # Each step bounded on its own: this test once hung until pytest's 300 s timeout on a
        # loaded machine, after the last reconnect, and the bare timeout could not say where.
        await asyncio.wait_for(buses[0].publish("after-restarts", {"kind": "ping"}), 10)
        for index, subscription in enumerate(subscriptions):
            async with asyncio.timeout(10):
                payload = await subscription.get()
                while payload.get("kind") == "resync":
                    payload = await subscription.get()
            assert payload == {"kind": "ping"}, f"bus {index}"
    finally:
        for bus in buses:
            await asyncio.wait_for(bus.stop(), 10)
        await asyncio.wait_for(engine.dispose(), 10)
