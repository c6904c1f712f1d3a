"""SIGTERM one of two instances mid-conversation (SPEC §8, §11): the instance stops accepting,
its visitors and volunteer are told to reconnect (1012) and resume on the other instance with
their resume token / token and last_seq, and nothing acknowledged is lost or stored twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from app.chat.models import ChatSession, Message
from app.core.db import create_sessionmaker, transaction
from app.routing.models import Assignment, Volunteer
from tests.chat.resilient import ProtocolViolation, ResilientVisitor
from tests.conftest import ServerProcess
from tests.routing.helpers import add_volunteer

Frame = dict[str, Any]
_RETRYABLE = (ConnectionClosed, OSError, TimeoutError, InvalidHandshake, InvalidStatus)
# Texts the triage engine rates `none`: an escalation's safety message would be fine, but it
# would make this test about escalation too.
CALM = ("hi", "ok")


@dataclass
class ResilientVolunteer:
    """A volunteer that takes ``capacity`` chats, writes ``per_chat`` messages into each, and on
    any disconnect reconnects (``url()``) with ``last_seq`` per chat and resends what was not
    acked. Checks that one connection never skips or repeats a seq of a chat."""

    token: str
    url: Callable[[], str]
    capacity: int
    per_chat: int
    pause_s: float
    sessions: list[str] = field(default_factory=list)
    last_seq: dict[str, int] = field(default_factory=dict)
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # cid -> (session, seq)
    close_codes: list[int | None] = field(default_factory=list)
    errors: list[Frame] = field(default_factory=list)
    connections: int = 0

    def outbox(self) -> list[tuple[str, str]]:
        return [
            (session_id, f"vol-{session_id[:8]}-{k}")
            for k in range(self.per_chat)
            for session_id in self.sessions
        ]

    @property
    def done(self) -> bool:
        return len(self.sessions) == self.capacity and all(
            cid in self.acked for _, cid in self.outbox()
        )

    async def run(self, deadline_s: float) -> None:
        async with asyncio.timeout(deadline_s):
            while not self.done:
                try:
                    await self._one_connection()
                except _RETRYABLE:
                    await asyncio.sleep(0.05)

    async def _one_connection(self) -> None:
        self.connections += 1
        ws = await connect(f"{self.url()}/v1/volunteer", open_timeout=5, close_timeout=1)
        try:
            await self._converse(ws)
        finally:
            await ws.close()
            self.close_codes.append(ws.close_code)

    async def _converse(self, ws: ClientConnection) -> None:
        since = dict(self.last_seq)
        await ws.send(json.dumps({"type": "auth", "token": self.token, "last_seq": since}))
        acks: dict[str, asyncio.Event] = {}
        reader = asyncio.create_task(self._read(ws, since, acks))
        try:
            while not self.done:
                pending = [(s, c) for s, c in self.outbox() if c not in self.acked]
                if not pending:  # still waiting for offers
                    await asyncio.wait({reader}, timeout=0.05)
                    if reader.done():
                        reader.result()
                    continue
                session_id, cid = pending[0]
                event = acks.setdefault(cid, asyncio.Event())
                frame = {"type": "message", "session_id": session_id, "client_msg_id": cid}
                await ws.send(json.dumps({**frame, "text": f"volunteer says {cid}"}))
                waiter = asyncio.create_task(event.wait())
                done, _ = await asyncio.wait(
                    {waiter, reader}, timeout=15, return_when="FIRST_COMPLETED"
                )
                if waiter not in done:
                    waiter.cancel()
                    if reader in done:
                        reader.result()
                    raise TimeoutError(f"no ack for {cid}")
                await asyncio.sleep(self.pause_s)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_RETRYABLE):
                await reader

    async def _read(
        self, ws: ClientConnection, since: dict[str, int], acks: dict[str, asyncio.Event]
    ) -> None:
        delivered: dict[str, int] = {}  # per chat, the last seq sent on this connection
        async for raw in ws:
            frame: Frame = json.loads(raw)
            kind = frame["type"]
            session_id = frame.get("session_id")
            if kind == "offer" and len(self.sessions) < self.capacity:
                await ws.send(json.dumps({"type": "accept", "session_id": session_id}))
            elif kind == "assigned" and session_id not in self.sessions:
                assert isinstance(session_id, str)
                self.sessions.append(session_id)
            elif kind == "message":
                assert isinstance(session_id, str)
                seq = frame["seq"]
                expected = delivered.get(session_id, since.get(session_id, 0)) + 1
                if seq != expected:
                    raise ProtocolViolation(f"volunteer: seq {seq} of {session_id}, not {expected}")
                delivered[session_id] = seq
                self.last_seq[session_id] = max(self.last_seq.get(session_id, 0), seq)
            elif kind == "ack":
                cid = frame["client_msg_id"]
                previous = self.acked.setdefault(cid, (frame["session_id"], frame["seq"]))
                if previous[1] != frame["seq"]:
                    raise ProtocolViolation(f"volunteer: {cid} acked as {previous} and {frame}")
                acks.setdefault(cid, asyncio.Event()).set()
            elif kind == "error":
                self.errors.append(frame)


async def clean_slate(engine: AsyncEngine) -> None:
    """Runs share one database: nobody else's chats, offers or online volunteers."""
    async with engine.begin() as conn:
        await conn.execute(
            update(Assignment)
            .where(Assignment.status.in_(("offered", "active")))
            .values(status="closed", end_reason="test_cleanup")
        )
        await conn.execute(
            update(ChatSession)
            .where(ChatSession.status.not_in(("closed", "abandoned")))
            .values(status="closed")
        )
        await conn.execute(update(Volunteer).values(load=0, presence="offline"))


async def verify(
    visitors: list[ResilientVisitor], volunteer: ResilientVolunteer, engine: AsyncEngine
) -> None:
    volunteer_seqs = {cid: seq for cid, (_, seq) in volunteer.acked.items()}
    for v in visitors:
        assert v.done, v.name
        assert v.errors == [], (v.name, v.errors)
    for v, replay in zip(
        visitors, await asyncio.gather(*(v.full_replay() for v in visitors)), strict=True
    ):
        # Gap-free, each message once, every ack kept its seq (visitor and volunteer alike).
        assert [f["seq"] for f in replay] == list(range(1, len(replay) + 1)), v.name
        mine = {f["client_msg_id"]: f for f in replay if f["sender"] == "visitor"}
        assert len(mine) == len(v.texts)
        for index, text in enumerate(v.texts):
            frame = mine[v.cid(index)]
            assert (frame["seq"], frame["text"]) == (v.acked[v.cid(index)], text)
        for frame in replay:
            if frame["sender"] == "volunteer":
                assert frame["text"].startswith("volunteer says vol-")
    session_ids = [uuid.UUID(v.session_id) for v in visitors if v.session_id]
    async with engine.connect() as conn:
        twice = (
            await conn.execute(
                select(Message.session_id, Message.sender, Message.client_msg_id)
                .where(Message.session_id.in_(session_ids), Message.client_msg_id.is_not(None))
                .group_by(Message.session_id, Message.sender, Message.client_msg_id)
                .having(func.count() > 1)
            )
        ).all()
        stored = dict(
            (
                await conn.execute(
                    select(Message.client_msg_id, Message.seq).where(
                        Message.session_id.in_([uuid.UUID(s) for s in volunteer.sessions]),
                        Message.sender == "volunteer",
                    )
                )
            ).all()
        )
    assert twice == []  # nothing stored twice
    assert stored == volunteer_seqs  # every acked volunteer message, once, with its seq


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_sigterm_drains_and_everyone_resumes_on_the_other_instance(
    server_process_factory: Callable[..., ServerProcess], engine: AsyncEngine
) -> None:
    await clean_slate(engine)
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as db:
        issued, _ = await add_volunteer(db, online=False, capacity=2)
    env = {
        "BEACON_WS_RATE_LIMIT_PER_S": "1000",
        "BEACON_WS_RATE_LIMIT_BURST": "1000",
        "BEACON_OFFER_TIMEOUT_S": "30",
    }
    first, second = server_process_factory(**env), server_process_factory(**env)
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    current = {"url": first.ws_url}
    visitors = [
        ResilientVisitor(
            name=f"t{i}x{uuid.uuid4().hex[:6]}",
            texts=[CALM[k % 2] for k in range(60)],
            url=lambda: current["url"],
            rng=random.Random(2000 + i),
            pause_s=0.1,
        )
        for i in range(8)
    ]
    volunteer = ResilientVolunteer(
        token=issued.token, url=lambda: current["url"], capacity=2, per_chat=20, pause_s=0.1
    )
    runs = asyncio.gather(*(v.run(deadline_s=180) for v in visitors), volunteer.run(180))
    async with asyncio.timeout(60):
        while sum(len(v.acked) for v in visitors) < 120 or len(volunteer.acked) < 4:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # polling the clients
    # The load balancer sends new connections to the other instance from now on.
    current["url"] = second.ws_url
    assert first.proc is not None
    first.proc.send_signal(signal.SIGTERM)
    talking = [v for v in visitors if not v.done]
    assert len(talking) >= 4
    assert not volunteer.done
    acked_at_sigterm = {v.name: dict(v.acked) for v in visitors}
    volunteer_acked_at_sigterm = dict(volunteer.acked)
    async with asyncio.timeout(30):
        while not any(1012 in v.close_codes for v in talking):  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # polling the clients
    # Sockets are told to reconnect only after the listener closed: it accepts nothing new.
    with pytest.raises(_RETRYABLE):
        async with connect(f"{first.ws_url}/v1/chat", open_timeout=5):
            pass
    await runs
    assert await asyncio.to_thread(first.proc.wait, 30) in (0, -signal.SIGTERM)

    # Told to reconnect, on both sockets; and they did, on the other instance.
    for v in talking:
        assert v.close_codes[0] == 1012, (v.name, v.close_codes)
        assert v.connections >= 2
    assert volunteer.close_codes[0] == 1012, volunteer.close_codes
    assert volunteer.errors == []
    for v in visitors:
        for cid, seq in acked_at_sigterm[v.name].items():
            assert v.acked[cid] == seq
    for cid, acked in volunteer_acked_at_sigterm.items():
        assert volunteer.acked[cid] == acked
    await verify(visitors, volunteer, engine)
