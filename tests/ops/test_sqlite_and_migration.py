"""The embedded SQLite default runs the same purge and at-risk sweep; migration 0005 goes up and
down on both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.models import Event
from app.bus import InProcessBus
from app.chat.models import ChatSession
from app.core.db import create_engine, create_sessionmaker, transaction, utcnow
from app.core.migrate import alembic_config, upgrade_to_head
from app.retention import service
from app.retention.worker import run_purge
from app.routing import at_risk
from app.routing.assignments import SUPERVISORS_CHANNEL
from tests import pg
from tests.ops import builders
from tests.ops.builders import ago, assert_purged_as_expected


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'beacon.db'}"
    await asyncio.to_thread(upgrade_to_head, url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


async def test_purge_on_sqlite(sqlite_engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(sqlite_engine)
    now = utcnow()
    async with transaction(sessionmaker) as db:
        fx = await builders.build(db, now)
    dry = await run_purge(
        sessionmaker, retention_days=90, batch_size=2, trigger="test", dry_run=True, now=now
    )
    assert dry.counts == service.PurgeCounts(messages=4, notes=1, triage_requests=2)
    report = await run_purge(sessionmaker, retention_days=90, batch_size=2, trigger="test", now=now)
    assert report.counts == dry.counts
    async with sessionmaker() as db:
        await assert_purged_as_expected(db, fx)
        trail = (await db.scalars(select(Event).where(Event.action == "retention_purged"))).all()
    assert [e.details["messages"] for e in trail] == [4]


async def test_at_risk_sweep_on_sqlite(sqlite_engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(sqlite_engine)
    bus = InProcessBus()
    alerts = bus.subscribe(SUPERVISORS_CHANNEL)
    now = utcnow()
    async with transaction(sessionmaker) as db:
        high = await builders.add_session(db, created=now, status="waiting", urgency=3)
        calm = await builders.add_session(db, created=now, status="waiting", urgency=1)
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id.in_([high, calm]))
            .values(visitor_seen_at=now - timedelta(seconds=30))
        )
    local: set[uuid.UUID] = set()
    watch = at_risk.LostVisitorWatch(
        sessionmaker=sessionmaker, bus=bus, grace_s=10, interval_s=60, is_local=local.__contains__
    )

    local.add(high)  # a socket here: a late heartbeat, not a lost visitor
    assert await watch.sweep() == []
    local.clear()
    assert await watch.sweep() == [high]
    assert await watch.sweep() == []
    alert: dict[str, Any] = await asyncio.wait_for(alerts.get(), 1)
    assert alert["reason"] == "visitor_lost"
    assert alert["session_id"] == str(high)
    async with sessionmaker() as db:
        listing = await at_risk.listing(db, grace_s=10)
    assert [s.session_id for s in listing.sessions] == [high]
    assert listing.sessions[0].alerted_at is not None

    async with transaction(sessionmaker) as db:
        await db.execute(
            update(ChatSession).where(ChatSession.id == high).values(visitor_seen_at=utcnow())
        )
    assert await watch.sweep() == []
    returned = await asyncio.wait_for(alerts.get(), 1)
    assert returned["reason"] == "visitor_returned"
    async with sessionmaker() as db:
        assert (await at_risk.listing(db, grace_s=10)).sessions == []
        row = await db.get(ChatSession, high)
        assert row is not None
        assert row.visitor_lost_at is None
        assert row.status == "waiting"


async def _shape(engine: AsyncEngine) -> dict[str, Any]:
    def read(sync_conn: Any) -> dict[str, Any]:
        inspector = inspect(sync_conn)
        return {
            "session_columns": {c["name"] for c in inspector.get_columns("chat_sessions")},
            "message_indexes": {i["name"] for i in inspector.get_indexes("messages")},
            "disposition_indexes": {i["name"] for i in inspector.get_indexes("dispositions")},
            "request_indexes": {i["name"] for i in inspector.get_indexes("triage_requests")},
            "session_indexes": {i["name"] for i in inspector.get_indexes("chat_sessions")},
        }

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def _round_trip(url: str) -> None:
    config = alembic_config(url)
    await asyncio.to_thread(command.upgrade, config, "heads")
    engine = create_engine(url, pool_size=1)
    try:
        up = await _shape(engine)
        assert "visitor_lost_at" in up["session_columns"]
        assert "ix_messages_unpurged_sent_at" in up["message_indexes"]
        assert "ix_messages_sent_at" not in up["message_indexes"]
        assert "ix_dispositions_unpurged_created_at" in up["disposition_indexes"]
        assert "ix_triage_requests_created_at" in up["request_indexes"]
        await engine.dispose()

        await asyncio.to_thread(command.downgrade, config, "0004_escalation")
        down = await _shape(engine)
        assert "visitor_lost_at" not in down["session_columns"]
        assert "ix_messages_sent_at" in down["message_indexes"]
        assert "ix_messages_unpurged_sent_at" not in down["message_indexes"]
        assert "ix_dispositions_unpurged_created_at" not in down["disposition_indexes"]
        assert "ix_triage_requests_created_at" not in down["request_indexes"]
        # The table rebuilt for the column drop (SQLite) keeps its queue index.
        assert down["session_indexes"] == up["session_indexes"]
        await engine.dispose()

        await asyncio.to_thread(command.upgrade, config, "heads")
        assert await _shape(engine) == up
    finally:
        await engine.dispose()


async def test_migration_up_down_up_on_sqlite(tmp_path: Path) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}")


async def test_migration_up_down_up_on_postgres(pg_server: pg.PgServer) -> None:
    url = await pg.create_database(pg_server.admin_url, prefix="beacon_ops_migrate")
    try:
        await _round_trip(url)
    finally:
        await pg.drop_database(pg_server.admin_url, url)


async def test_old_rows_survive_down_and_up(tmp_path: Path) -> None:
    """Data written at head is still there after a downgrade and upgrade (no table loses rows)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'data.db'}"
    await asyncio.to_thread(upgrade_to_head, url)
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as db:
            session_id = await builders.add_session(db, created=ago(utcnow(), 1), urgency=3)
            await builders.add_message(db, session_id, 1, sent_at=ago(utcnow(), 1))
        await engine.dispose()
        config = alembic_config(url)
        await asyncio.to_thread(command.downgrade, config, "0004_escalation")
        await asyncio.to_thread(command.upgrade, config, "heads")
        async with create_sessionmaker(engine)() as db:
            row = await db.get(ChatSession, session_id)
            assert row is not None
            assert row.urgency == 3
            assert row.visitor_lost_at is None
    finally:
        await engine.dispose()
