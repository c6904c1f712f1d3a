"""Both bus implementations, on real Postgres: fan-out, transactional publishing, cross-instance
delivery, and the resync that follows a lost listener or a slow subscriber."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.bus import RESYNC, Bus, InProcessBus, Payload, PostgresBus, Subscription
from app.core.db import create_sessionmaker, transaction


async def next_payload(subscription: Subscription, wait_s: float = 5.0) -> dict[str, Any]:
    return await asyncio.wait_for(subscription.get(), wait_s)


async def nothing_within(subscription: Subscription, wait_s: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(subscription.get(), wait_s)
    except TimeoutError:
        return True
    return False


async def publish_then_fail(
    bus: Bus, sessionmaker: async_sessionmaker[AsyncSession], channel: str, payload: Payload
) -> None:
    async with transaction(sessionmaker) as db:
        await bus.publish(channel, payload, db=db)
        raise RuntimeError("roll back")


@pytest.fixture
async def pg_buses(database_url: str, engine: AsyncEngine) -> AsyncIterator[list[PostgresBus]]:
    """Two buses on one database: two instances, as far as LISTEN/NOTIFY can tell."""
    buses = [
        PostgresBus(
            database_url=database_url,
            engine=engine,
            pg_channel=f"beacon_test_{uuid.uuid4().hex[:8]}",
            health_interval_s=0.2,
        )
        for _ in range(2)
    ]
    buses[1]._pg_channel = buses[0]._pg_channel
    for bus in buses:
        await bus.start()
    yield buses
    for bus in buses:
        await bus.stop()


async def test_in_process_fan_out_and_isolation() -> None:
    bus: Bus = InProcessBus()
    a1, a2, b = bus.subscribe("a"), bus.subscribe("a"), bus.subscribe("b")
    await bus.publish("a", {"n": 1})
    assert await next_payload(a1) == {"n": 1}
    assert await next_payload(a2) == {"n": 1}
    assert await nothing_within(b)
    a1.close()
    await bus.publish("a", {"n": 2})
    assert bus.subscriber_count("a") == 1
    assert await next_payload(a2) == {"n": 2}


async def test_in_process_transactional_publish(engine: AsyncEngine) -> None:
    bus = InProcessBus()
    sessionmaker = create_sessionmaker(engine)
    sub = bus.subscribe("tx")
    async with transaction(sessionmaker) as db:
        await db.execute(text("SELECT 1"))
        await bus.publish("tx", {"n": 1}, db=db)
        assert await nothing_within(sub, 0.05)  # not before the commit
    assert await next_payload(sub) == {"n": 1}
    with pytest.raises(RuntimeError):
        await publish_then_fail(bus, sessionmaker, "tx", {"n": 2})
    assert await nothing_within(sub)


async def test_postgres_cross_instance_delivery(pg_buses: list[PostgresBus]) -> None:
    a, b = pg_buses
    on_a, on_b = a.subscribe("session:x"), b.subscribe("session:x")
    await a.publish("session:x", {"kind": "message", "seq": 1})
    assert await next_payload(on_b) == {"kind": "message", "seq": 1}
    assert await next_payload(on_a) == {"kind": "message", "seq": 1}  # and locally


async def test_postgres_publish_in_transaction_only_on_commit(
    pg_buses: list[PostgresBus], engine: AsyncEngine
) -> None:
    a, b = pg_buses
    sub = b.subscribe("tx")
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as db:
        await a.publish_many([("tx", {"n": 1}), ("tx", {"n": 2})], db=db)
        assert await nothing_within(sub)
    assert [await next_payload(sub), await next_payload(sub)] == [{"n": 1}, {"n": 2}]
    with pytest.raises(RuntimeError):
        await publish_then_fail(a, sessionmaker, "tx", {"n": 3})
    assert await nothing_within(sub)


async def test_postgres_listener_loss_resyncs_and_recovers(
    pg_buses: list[PostgresBus], engine: AsyncEngine
) -> None:
    a, b = pg_buses
    sub = b.subscribe("s")
    assert b._conn is not None
    pid = b._conn.get_server_pid()
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    assert await next_payload(sub, 10) == RESYNC
    assert b.reconnects == 1
    await a.publish("s", {"after": "reconnect"})
    assert await next_payload(sub) == {"after": "reconnect"}


async def test_slow_subscriber_gets_a_resync_instead_of_a_backlog() -> None:
    bus = InProcessBus(backlog=3)
    sub = bus.subscribe("c")
    for n in range(10):
        await bus.publish("c", {"n": n})
    assert await next_payload(sub) == RESYNC
    await bus.publish("c", {"n": 99})
    assert await next_payload(sub) == {"n": 99}


async def test_payloads_are_hints_not_content(pg_buses: list[PostgresBus]) -> None:
    with pytest.raises(ValueError, match="too large"):
        await pg_buses[0].publish("c", {"text": "x" * 8000})
    with pytest.raises(ValueError, match="too large"):
        await InProcessBus().publish("c", {"text": "x" * 8000})


async def test_postgres_own_events_arrive_at_commit_once(
    pg_buses: list[PostgresBus], engine: AsyncEngine
) -> None:
    """This instance's subscribers get its events when the COMMIT returns (no NOTIFY round
    trip), and the NOTIFY that comes back later is not delivered a second time; the other
    instance still hears each event once, over NOTIFY."""
    a, b = pg_buses
    local, remote = a.subscribe("once"), b.subscribe("once")
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as db:
        await a.publish_many([("once", {"n": 1}), ("once", {"n": 2})], db=db)
        assert await nothing_within(local, 0.05)  # not before the commit
    # Delivered by the commit itself: already queued, before any NOTIFY could be read.
    assert local._queue is not None
    assert local._queue.qsize() == 2
    assert [await next_payload(local), await next_payload(local)] == [{"n": 1}, {"n": 2}]
    await a.publish("once", {"n": 3})  # outside a transaction too
    assert await next_payload(local) == {"n": 3}
    assert [await next_payload(remote) for _ in range(3)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    # The NOTIFYs of all three have reached a by now (b heard them): none is delivered again.
    assert await nothing_within(local)
    assert await nothing_within(remote)


@pytest.mark.parametrize("kind", ["in_process", "postgres"])
async def test_a_savepoint_neither_delivers_nor_drops_the_transactions_events(
    kind: str, pg_buses: list[PostgresBus], engine: AsyncEngine
) -> None:
    """SQLAlchemy fires its commit and rollback events for savepoints too: only the outermost
    transaction may deliver (or drop) what it published."""
    bus: Bus = InProcessBus() if kind == "in_process" else pg_buses[0]
    sub = bus.subscribe("sp")
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as db:
        await bus.publish("sp", {"n": 1}, db=db)
        async with db.begin_nested():
            await db.execute(text("SELECT 1"))
        assert await nothing_within(sub, 0.05)  # a released savepoint is not the commit
        nested = await db.begin_nested()
        await db.execute(text("SELECT 1"))
        await nested.rollback()  # must not drop {"n": 1}
        await bus.publish("sp", {"n": 2}, db=db)
    assert [await next_payload(sub), await next_payload(sub)] == [{"n": 1}, {"n": 2}]
    assert await nothing_within(sub)


async def test_a_publish_outside_a_transaction_gives_up_instead_of_waiting_for_the_pool(
    database_url: str,
) -> None:
    # A typing hint is published outside any transaction, from the visitor's frame handler: with
    # every pooled connection busy it used to wait for SQLAlchemy's 30 s pool timeout (and a
    # server that is away, for the driver's connect timeout), holding that visitor's frames.
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=60)
    bus = PostgresBus(database_url=database_url, engine=engine, publish_timeout_s=0.3)
    await bus.start()
    try:
        async with engine.connect() as held:  # the pool's only connection
            await held.execute(text("SELECT 1"))
            # The bus's own bound must end it (0.3 s), long before the pool's 60 s: a bare
            # wait_for here would raise TimeoutError either way and prove nothing.
            publishing = asyncio.ensure_future(bus.publish("typing", {"n": 1}))
            done, _ = await asyncio.wait({publishing}, timeout=10)
            if not done:
                publishing.cancel()
            assert publishing in done, "the publish was still waiting for the pool after 10 s"
            assert isinstance(publishing.exception(), TimeoutError)
        listener = bus.subscribe("typing")
        await bus.publish("typing", {"n": 2})  # the pool is free again: published as before
        assert await next_payload(listener) == {"n": 2}
    finally:
        await bus.stop()
        await engine.dispose()
