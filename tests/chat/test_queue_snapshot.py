"""The queue monitor's snapshot is kept by events (issue 13): after joins, urgency rises and
departures it equals a full recompute by the database, without the monitor re-reading the whole
queue. Real server, real Postgres bus, real ``websockets`` visitors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.chat.queue import QueueMonitor, waiting_order
from app.chat.service import change_status
from app.core.db import transaction
from app.domain.session import SessionStatus
from tests.chat.conftest import Visitor, end_live_sessions
from tests.conftest import LiveServer

VisitorFactory = Callable[..., Any]
URGENT = "I want to kill myself. I took 30 pills an hour ago"


async def _recomputed(engine: AsyncEngine, monitor: QueueMonitor) -> dict[uuid.UUID, int]:
    async with AsyncSession(engine) as db:
        order = await waiting_order(db, ceiling_s=monitor._ceiling_s)
    return {session_id: i for i, (session_id, _) in enumerate(order, 1)}


async def _agrees(engine: AsyncEngine, monitor: QueueMonitor, wait_s: float = 10.0) -> None:
    """The snapshot converges on the database's order (events arrive asynchronously)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        expected = await _recomputed(engine, monitor)
        if monitor.positions() == expected:
            return
        if asyncio.get_running_loop().time() > deadline:
            assert monitor.positions() == expected
        await asyncio.sleep(0.05)


async def _join(make: VisitorFactory, server: LiveServer, text: str = "hi") -> Visitor:
    """A visitor who spoke (the first triage of a cold engine can take seconds)."""
    visitor: Visitor = await make(server)
    await visitor.hello()
    await visitor.say(text)
    return visitor


async def test_incremental_snapshot_equals_a_full_recompute(
    live_server_factory: Callable[..., Any], visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    await end_live_sessions(engine)
    # A refresh period far beyond the test: whatever the snapshot learns, events taught it.
    server: LiveServer = await live_server_factory(
        ws_rate_limit_per_s=1000.0, ws_rate_limit_burst=1000, queue_refresh_s=600.0
    )
    state = server.app.state.beacon
    monitor: QueueMonitor = state.queue
    first = await _join(visitor_factory, server)
    assert (await first.told_position(1, wait_s=30))["queue_position"] == 1
    reads = monitor.full_reads
    assert reads == 1  # the first lookup loaded the queue; nothing has read all of it since

    # Joins: each new speaker goes to the back of the calm queue.
    calm = [await _join(visitor_factory, server) for _ in range(4)]
    await _agrees(engine, monitor)
    assert len(monitor.positions()) == 5
    # A hello alone joins nothing.
    silent: Visitor = await visitor_factory(server)
    await silent.hello()
    await _agrees(engine, monitor)
    assert len(monitor.positions()) == 5

    # An urgency rise moves the last one to the front, and everyone else one place back.
    urgent_id = uuid.UUID(calm[-1].frames[0]["session_id"])
    await calm[-1].say(URGENT)
    await _agrees(engine, monitor)
    assert monitor.positions()[urgent_id] == 1
    assert (await first.told_position(2))["queue_position"] == 2

    # Departures: one closes the chat, one is taken out of the queue by someone else.
    await calm[0].send({"type": "close"})
    await calm[0].recv_until("status", status="closed")
    second_id = uuid.UUID(calm[1].frames[0]["session_id"])
    async with transaction(state.sessionmaker) as db:
        await change_status(
            db, state.bus, session_id=second_id, to=SessionStatus.closed, reason="test"
        )
    await _agrees(engine, monitor)
    assert len(monitor.positions()) == 3
    assert second_id not in monitor.positions()

    # A joiner after all that, and the snapshot still matches the database row for row.
    await _join(visitor_factory, server)
    await _agrees(engine, monitor)
    assert len(monitor.positions()) == 4
    assert monitor.full_reads == reads, "the queue was re-read whole instead of incrementally"
    assert monitor.rows_reread >= 8  # one marked row per change, read by id


async def test_a_bus_resync_reads_the_whole_queue_again(
    live_server_factory: Callable[..., Any], visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    """Lost hints are never trusted to be harmless: a resync means one full read."""
    await end_live_sessions(engine)
    server: LiveServer = await live_server_factory(
        ws_rate_limit_per_s=1000.0, ws_rate_limit_burst=1000, queue_refresh_s=600.0
    )
    monitor: QueueMonitor = server.app.state.beacon.queue
    visitor = await _join(visitor_factory, server)
    await visitor.told_position(1)
    reads = monitor.full_reads
    server.app.state.beacon.bus._resync_all()  # what a reconnected bus listener does
    for _ in range(100):
        if monitor.full_reads > reads:
            break
        await asyncio.sleep(0.05)
    assert monitor.full_reads == reads + 1
    await _agrees(engine, monitor)
