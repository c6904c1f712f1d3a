"""Retention on Postgres (SPEC §9): what is purged past the period, what is kept, and the trail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.models import Event
from app.chat.models import ChatSession
from app.core.db import create_sessionmaker, transaction, utcnow
from app.retention import service
from app.retention.worker import run_purge
from tests.ops import builders
from tests.ops.builders import ago, assert_purged_as_expected, texts

BIG = 1_000_000


async def purge_everything(db: AsyncSession, cutoff: datetime) -> service.PurgeCounts:
    return service.PurgeCounts(
        messages=await service.purge_message_texts(db, cutoff=cutoff, limit=BIG),
        notes=await service.purge_disposition_notes(db, cutoff=cutoff, limit=BIG),
        triage_requests=await service.delete_triage_requests(db, cutoff=cutoff, limit=BIG),
    )


async def test_purge_clears_text_past_the_period_and_keeps_metadata(db: AsyncSession) -> None:
    now = utcnow()
    cutoff = service.cutoff_for(90, now)
    await purge_everything(db, cutoff)  # anything older left by other tests of this run
    fx = await builders.build(db, now)
    counts = await purge_everything(db, cutoff)
    # 4 old texts (the already-erased one is not counted again), 1 note, 2 request rows.
    assert counts == service.PurgeCounts(messages=4, notes=1, triage_requests=2)
    await assert_purged_as_expected(db, fx)
    assert await purge_everything(db, cutoff) == service.PurgeCounts()


async def test_batches_stop_at_the_limit(db: AsyncSession) -> None:
    now = utcnow()
    cutoff = service.cutoff_for(90, now)
    await purge_everything(db, cutoff)
    session_id = await builders.add_session(db, created=ago(now, 95))
    ids = [await builders.add_message(db, session_id, s, sent_at=ago(now, 95)) for s in (1, 2, 3)]
    assert await service.purge_message_texts(db, cutoff=cutoff, limit=2) == 2
    assert (
        sorted(await texts(db, ids), key=lambda t: t is None)
        == ["words someone wrote"] + [None] * 2
    )
    assert await service.purge_message_texts(db, cutoff=cutoff, limit=2) == 1
    assert await texts(db, ids) == [None, None, None]


async def retention_events(db: AsyncSession, after_id: int) -> list[Event]:
    rows = await db.scalars(
        select(Event)
        .where(Event.action == "retention_purged", Event.id > after_id)
        .order_by(Event.id)
    )
    return list(rows.all())


async def last_event_id(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as db:
        return int(await db.scalar(select(func.coalesce(func.max(Event.id), 0))) or 0)


async def test_run_purges_in_batches_and_records_one_event_per_run(engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(engine)
    await run_purge(sessionmaker, retention_days=90, batch_size=1000, trigger="test")
    now = utcnow()
    async with transaction(sessionmaker) as db:
        fx = await builders.build(db, now)
    before = await last_event_id(sessionmaker)

    report = await run_purge(sessionmaker, retention_days=90, batch_size=2, trigger="test", now=now)

    assert report.counts == service.PurgeCounts(messages=4, notes=1, triage_requests=2)
    assert report.as_dict()["messages"] == 4
    assert not report.dry_run
    async with sessionmaker() as db:
        await assert_purged_as_expected(db, fx)
        events = await retention_events(db, before)
    assert len(events) == 1
    event = events[0]
    assert event.actor_type == "system"
    assert event.actor_id == "test"
    assert event.subject_type == "retention"
    assert event.details == {
        "messages": 4,
        "notes": 1,
        "triage_requests": 2,
        "whispers": 0,
        "contacts": 0,
        "handoff_payloads": 0,
        "cutoff": report.cutoff.isoformat(),
        "retention_days": 90,
        "completed": True,
    }
    # A second run finds nothing and says so.
    again = await run_purge(sessionmaker, retention_days=90, batch_size=2, trigger="test")
    assert again.counts == service.PurgeCounts()
    async with sessionmaker() as db:
        events = await retention_events(db, before)
    assert [e.details["messages"] for e in events] == [4, 0]


async def test_the_audit_trail_itself_is_kept(engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(engine)
    now = utcnow()
    async with transaction(sessionmaker) as db:
        session_id = await builders.add_session(db, created=ago(now, 300))
        db.add(
            Event(
                occurred_at=ago(now, 300),
                actor_type="visitor",
                actor_id=None,
                action="session_opened",
                subject_type="session",
                subject_id=str(session_id),
                details={},
            )
        )
    await run_purge(sessionmaker, retention_days=90, batch_size=100, trigger="test")
    async with sessionmaker() as db:
        kept = await db.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.subject_id == str(session_id), Event.action == "session_opened")
        )
        assert kept == 1
        assert await db.get(ChatSession, session_id) is not None


async def test_dry_run_counts_and_changes_nothing(engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(engine)
    await run_purge(sessionmaker, retention_days=90, batch_size=1000, trigger="test")
    now = utcnow()
    async with transaction(sessionmaker) as db:
        fx = await builders.build(db, now)
    before = await last_event_id(sessionmaker)

    report = await run_purge(
        sessionmaker, retention_days=90, batch_size=1000, trigger="test", dry_run=True, now=now
    )

    assert report.dry_run
    assert report.counts == service.PurgeCounts(messages=4, notes=1, triage_requests=2)
    async with sessionmaker() as db:
        assert None not in await texts(db, fx.old_message_ids)
        assert await retention_events(db, before) == []
    # Then for real, to leave nothing old behind for other tests.
    await run_purge(sessionmaker, retention_days=90, batch_size=1000, trigger="test")


async def test_concurrent_runs_share_the_work_and_count_each_row_once(engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(engine)
    await run_purge(sessionmaker, retention_days=90, batch_size=1000, trigger="test")
    now = utcnow()
    async with transaction(sessionmaker) as db:
        ids = []
        for _ in range(10):
            session_id = await builders.add_session(db, created=ago(now, 100))
            ids += [
                await builders.add_message(db, session_id, seq, sent_at=ago(now, 100))
                for seq in range(1, 21)
            ]

    reports = await asyncio.gather(
        *(
            run_purge(sessionmaker, retention_days=90, batch_size=7, trigger=f"instance-{i}")
            for i in range(3)
        )
    )

    assert sum(r.counts.messages for r in reports) == 200
    async with sessionmaker() as db:
        assert set(await texts(db, ids)) == {None}


async def test_the_lifespan_purges_on_schedule(
    engine: AsyncEngine, live_server_factory: Callable[..., Any]
) -> None:
    sessionmaker = create_sessionmaker(engine)
    now = utcnow()
    async with transaction(sessionmaker) as db:
        session_id = await builders.add_session(db, created=ago(now, 91))
        old = await builders.add_message(db, session_id, 1, sent_at=ago(now, 91))
        kept = await builders.add_message(db, session_id, 2, sent_at=ago(now, 10))
    before = await last_event_id(sessionmaker)
    server = await live_server_factory(retention_interval_s=0.2)

    # A run purges in batches and records its one audit event when the run ends, after the
    # batch that cleared this text: wait for both.
    deadline = time.monotonic() + 15
    while True:
        async with sessionmaker() as db:
            purged = (await texts(db, [old]))[0] is None
            events = await retention_events(db, before)
            if purged and events:
                break
        assert time.monotonic() < deadline, "the scheduled purge did not run"
        await asyncio.sleep(0.1)

    async with sessionmaker() as db:
        assert (await texts(db, [kept]))[0] == "words someone wrote"
    assert {e.actor_id for e in events} == {"schedule"}
    assert sum(e.details["messages"] for e in events) == 1
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        exposition = (await client.get("/metrics")).text
    assert 'beacon_retention_purged_total{kind="messages"} 1.0' in exposition
    assert "beacon_retention_last_success_timestamp_seconds " in exposition


async def test_interval_zero_turns_the_schedule_off(
    engine: AsyncEngine, live_server_factory: Callable[..., Any]
) -> None:
    sessionmaker = create_sessionmaker(engine)
    now = utcnow()
    async with transaction(sessionmaker) as db:
        session_id = await builders.add_session(db, created=ago(now, 91))
        old = await builders.add_message(db, session_id, 1, sent_at=ago(now, 91))
    server = await live_server_factory(retention_interval_s=0)
    await asyncio.sleep(0.5)
    async with sessionmaker() as db:
        assert (await texts(db, [old]))[0] == "words someone wrote"
    report = await server.app.state.beacon.retention.run_once()
    assert report.counts.messages == 1
