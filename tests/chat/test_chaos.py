"""Nothing acked is lost, nothing is stored twice: many visitors dropping and resuming at random,
and a server killed with SIGKILL mid-conversation."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat.models import Message
from tests.chat.resilient import ResilientVisitor


async def verify(visitors: list[ResilientVisitor], engine: AsyncEngine) -> None:
    """Every message acked exactly once, in order, none lost; the transcript is gap-free.

    The transcript may also hold system messages (a safety message when triage rates a line
    imminent takes the next seq), so the visitor's own messages are checked by client_msg_id and
    order, and the seqs of the whole transcript by being 1..N without gaps.
    """
    for v in visitors:
        assert v.done, v.name
        assert v.errors == [], (v.name, v.errors)
        # Acked seqs: one per message, distinct, increasing in the order they were sent.
        acked = [v.acked[v.cid(index)] for index in range(len(v.texts))]
        assert acked == sorted(set(acked)), v.name
    replays = await asyncio.gather(*(v.full_replay() for v in visitors))
    for v, replay in zip(visitors, replays, strict=True):
        assert [f["seq"] for f in replay] == list(range(1, len(replay) + 1))
        own = [f for f in replay if f["sender"] == "visitor"]
        assert all(f["sender"] == "system" for f in replay if f["sender"] != "visitor")
        assert [f["client_msg_id"] for f in own] == [v.cid(i) for i in range(len(v.texts))]
        for index, text in enumerate(v.texts):
            frame = own[index]
            assert frame["text"] == text
            assert frame["seq"] == v.acked[v.cid(index)]
    session_ids = [uuid.UUID(v.session_id) for v in visitors if v.session_id]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    Message.session_id,
                    func.count(),
                    func.count(func.distinct(Message.client_msg_id)),
                    func.min(Message.seq),
                    func.max(Message.seq),
                )
                .where(Message.session_id.in_(session_ids), Message.sender == "visitor")
                .group_by(Message.session_id)
            )
        ).all()
    assert len(rows) == len(visitors)
    for session_id, count, distinct_ids, low, high in rows:
        visitor = next(v for v in visitors if v.session_id == str(session_id))
        expected = len(visitor.texts)
        assert (count, distinct_ids, low) == (expected, expected, 1)
        assert high == visitor.acked[visitor.cid(expected - 1)]


@pytest.mark.slow
async def test_hundred_visitors_dropping_and_resuming(
    live_server_factory: Callable[..., Any], engine: AsyncEngine
) -> None:
    server = await live_server_factory(ws_rate_limit_per_s=1000.0, ws_rate_limit_burst=1000)
    visitors = [
        ResilientVisitor(
            name=f"v{i}x{uuid.uuid4().hex[:6]}",
            texts=[f"visitor {i} says {k} ✨" for k in range(20)],
            url=lambda: server.ws_url,
            rng=random.Random(i),
            drop_probability=0.25,
            pause_s=0.02,
        )
        for i in range(100)
    ]
    await asyncio.gather(*(v.run() for v in visitors))
    assert sum(v.drops for v in visitors) > 50  # the chaos really happened
    assert sum(v.connections for v in visitors) > 150
    print(
        "drops",
        sum(v.drops for v in visitors),
        "connections",
        sum(v.connections for v in visitors),
        "resends",
        sum(v.resends for v in visitors),
    )
    await verify(visitors, engine)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_server_killed_mid_conversation_loses_nothing(
    server_process_factory: Callable[..., Any], engine: AsyncEngine
) -> None:
    env = {"BEACON_WS_RATE_LIMIT_PER_S": "1000", "BEACON_WS_RATE_LIMIT_BURST": "1000"}
    first = server_process_factory(**env)
    await asyncio.to_thread(first.start)
    current = {"url": first.ws_url}
    visitors = [
        ResilientVisitor(
            name=f"k{i}x{uuid.uuid4().hex[:6]}",
            texts=[f"before and after the crash {i}/{k}" for k in range(30)],
            url=lambda: current["url"],
            rng=random.Random(1000 + i),
            pause_s=0.05,
        )
        for i in range(30)
    ]
    runs = asyncio.gather(*(v.run(deadline_s=180) for v in visitors))
    # Let the conversations get going, then pull the plug.
    async with asyncio.timeout(60):
        while sum(len(v.acked) for v in visitors) < 200:  # noqa: ASYNC110 - polling a client
            await asyncio.sleep(0.02)
    first.kill()
    acked_at_crash = {v.name: dict(v.acked) for v in visitors}
    second = server_process_factory(**env)
    await asyncio.to_thread(second.start)
    current["url"] = second.ws_url
    await runs
    for v in visitors:
        # Everything acked before the crash kept its seq.
        for cid, seq in acked_at_crash[v.name].items():
            assert v.acked[cid] == seq
    assert sum(v.connections for v in visitors) >= 2 * len(visitors)
    print(
        "killed after",
        sum(len(a) for a in acked_at_crash.values()),
        "acks; resends",
        sum(v.resends for v in visitors),
    )
    await verify(visitors, engine)
