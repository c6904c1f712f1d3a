"""``chat.lifecycle.transition``: the table decides, one conditional UPDATE moves, one audit row
records, and the returned event says what the bus must carry. On the test's Postgres."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import Event
from app.audit.service import Actor
from app.bus import QUEUE_CHANNEL, InProcessBus, session_channel
from app.chat.lifecycle import transition, transition_all
from app.chat.models import ChatSession
from app.domain.machine import IllegalTransition
from app.domain.session import UNFINISHED, SessionStatus
from tests.factories import chat_session, save

S = SessionStatus


async def _audits(db: AsyncSession, session_id: uuid.UUID) -> list[dict[str, object]]:
    rows = await db.scalars(
        select(Event)
        .where(Event.subject_id == str(session_id), Event.action == "session_status_changed")
        .order_by(Event.id)
    )
    return [e.details for e in rows]


async def test_a_move_writes_the_row_audits_it_and_returns_its_event(db: AsyncSession) -> None:
    session = await save(db, chat_session(urgency=2))
    moved = await transition(
        db, session.id, S.offered, reason="offered", sources=[S.waiting], actor=Actor("system")
    )
    assert moved is not None
    assert moved.previous is S.waiting
    assert moved.status is S.offered
    assert await db.scalar(select(ChatSession.status).where(ChatSession.id == session.id)) == (
        "offered"
    )
    assert await _audits(db, session.id) == [
        {"from": "waiting", "to": "offered", "reason": "offered", "urgency": 2}
    ]
    assert [channel for channel, _ in moved.events()] == [
        session_channel(session.id),
        QUEUE_CHANNEL,
    ]


async def test_a_move_from_elsewhere_changes_nothing(db: AsyncSession) -> None:
    session = await save(db, chat_session(status="active"))
    assert await transition(db, session.id, S.offered, reason="x", sources=[S.waiting]) is None
    assert await _audits(db, session.id) == []


async def test_a_move_the_table_forbids_raises_before_writing(db: AsyncSession) -> None:
    session = await save(db, chat_session(status="closed"))
    with pytest.raises(IllegalTransition):
        await transition(db, session.id, S.waiting, reason="x", sources=[S.closed])
    assert await db.scalar(select(ChatSession.status).where(ChatSession.id == session.id)) == (
        "closed"
    )


async def test_several_sources_lock_first_and_say_where_it_came_from(db: AsyncSession) -> None:
    session = await save(db, chat_session(status="handed_off"))
    bus = InProcessBus()
    moved = await transition(
        db, session.id, S.closed, reason="visitor_closed", sources=UNFINISHED, bus=bus
    )
    assert moved is not None
    assert moved.previous is S.handed_off
    row = await db.get(ChatSession, session.id)
    assert row is not None
    assert row.closed_at is not None  # entering a terminal state stamps it


async def test_reopening_an_abandoned_session_clears_closed_at(db: AsyncSession) -> None:
    session = await save(db, chat_session(status="abandoned"))
    moved = await transition(db, session.id, S.waiting, reason="visitor_returned")
    assert moved is not None
    assert moved.session.closed_at is None


async def test_extra_conditions_and_columns_go_with_the_move(db: AsyncSession) -> None:
    session = await save(db, chat_session(status="active", urgency=4))
    assert (
        await transition(
            db, session.id, S.abandoned, reason="gone", where=[ChatSession.urgency < 3]
        )
        is None
    )
    moved = await transition(db, session.id, S.closed, reason="wrap_up", also={"urgency": 1})
    assert moved is not None
    assert moved.session.urgency == 1


async def test_the_bulk_form_moves_audits_and_announces_each(db: AsyncSession) -> None:
    quiet = [await save(db, chat_session(spoke=False)) for _ in range(3)]
    spoken = await save(db, chat_session())
    bus = InProcessBus()
    ids = [s.id for s in quiet]
    moved = await transition_all(
        db,
        ChatSession.id.in_([*ids, spoken.id]) & ChatSession.visitor_spoke_at.is_(None),
        S.waiting,
        S.abandoned,
        reason="never_spoke",
        bus=bus,
        queued=False,
    )
    assert sorted(m.session.id for m in moved) == sorted(ids)
    assert all(m.events() == m.events()[:1] for m in moved)  # the session's channel only
    for session_id in ids:
        assert [a["reason"] for a in await _audits(db, session_id)] == ["never_spoke"]
    assert await _audits(db, spoken.id) == []
