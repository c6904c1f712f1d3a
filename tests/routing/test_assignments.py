"""Offers, claims, capacity, release, transfer and wrap-up against Postgres (rolled back)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import Event
from app.audit.service import record_event
from app.chat.models import ChatSession, Message
from app.core.config import Settings
from app.core.db import utcnow
from app.routing import assignments
from app.routing.dispatch import recent_refusals
from app.routing.models import Assignment, Disposition, Volunteer
from tests.routing.helpers import SLOTS, add_session, add_volunteer, hide_other_sessions


async def _status(db: AsyncSession, session_id: uuid.UUID) -> str:
    status = await db.scalar(
        select(ChatSession.status)
        .where(ChatSession.id == session_id)
        .execution_options(populate_existing=True)
    )
    assert status is not None
    return status


async def _load(db: AsyncSession, volunteer_id: uuid.UUID) -> int:
    load = await db.scalar(select(Volunteer.load).where(Volunteer.id == volunteer_id))
    assert load is not None
    return load


async def test_offer_accept_close_lowers_urgency_with_audit(db: AsyncSession) -> None:
    session_id = await add_session(db, urgency=3, waited_s=30)
    _issued, me = await add_volunteer(db, capacity=1)
    made = await assignments.offer(db, session_id, me.id, timeout_s=20, high_urgency_slots=SLOTS)
    assert made is not None
    assert made.urgency == 3
    assert made.waited_s >= 30
    assert await _status(db, session_id) == "offered"
    assert await _load(db, me.id) == 1
    # A second offer of the same session, or to the same full volunteer, is refused.
    assert (
        await assignments.offer(db, session_id, me.id, timeout_s=20, high_urgency_slots=SLOTS)
        is None
    )
    other = await add_session(db)
    assert await assignments.offer(db, other, me.id, timeout_s=20, high_urgency_slots=SLOTS) is None
    assert await _status(db, other) == "waiting"

    _, notices = await assignments.accept(db, me, session_id)
    assert await _status(db, session_id) == "active"
    assert any(n.frame.get("type") == "assigned" for n in notices)
    assert any(n.visitor_status == (session_id, "active") for n in notices)

    await assignments.close(db, me, session_id, disposition="safety_plan", risk_level=1, notes="ok")
    assert await _status(db, session_id) == "closed"
    assert await _load(db, me.id) == 0
    urgency = await db.scalar(select(ChatSession.urgency).where(ChatSession.id == session_id))
    assert urgency == 1
    disposition = await db.scalar(select(Disposition).where(Disposition.session_id == session_id))
    assert disposition is not None
    assert disposition.code == "safety_plan"
    assert disposition.risk_level == 1
    actions = (
        await db.scalars(select(Event.action).where(Event.subject_id == str(session_id)))
    ).all()
    assert "urgency_lowered" in actions
    assert "session_closed" in actions


async def test_decline_and_expiry_return_the_session_keeping_its_wait(db: AsyncSession) -> None:
    session_id = await add_session(db, urgency=2, waited_s=100)
    before = await db.scalar(select(ChatSession.waiting_since).where(ChatSession.id == session_id))
    _, a = await add_volunteer(db)
    _, b = await add_volunteer(db)
    assert (
        await assignments.offer(db, session_id, a.id, timeout_s=20, high_urgency_slots=SLOTS)
        is not None
    )
    await assignments.decline(db, a, session_id)
    assert await _status(db, session_id) == "waiting"
    assert await _load(db, a.id) == 0
    assert (
        await assignments.offer(db, session_id, b.id, timeout_s=20, high_urgency_slots=SLOTS)
        is not None
    )
    await assignments.expire_offers(db, now=utcnow() + timedelta(seconds=21))
    assert await _status(db, session_id) == "waiting"
    assert await _load(db, b.id) == 0
    with pytest.raises(assignments.NoOffer):
        await assignments.accept(db, b, session_id)
    after = await db.scalar(select(ChatSession.waiting_since).where(ChatSession.id == session_id))
    assert after == before


async def test_release_and_cold_transfer_keep_priority(db: AsyncSession) -> None:
    session_id = await add_session(db, urgency=4, waited_s=5)
    _, me = await add_volunteer(db)
    await assignments.claim(db, me, session_id, high_urgency_slots=SLOTS)
    assert await _status(db, session_id) == "active"
    await assignments.release_by(db, me, session_id)
    session = await db.scalar(
        select(ChatSession)
        .where(ChatSession.id == session_id)
        .execution_options(populate_existing=True)
    )
    assert session is not None
    assert session.status == "waiting"
    assert session.urgency == 4
    assert (utcnow() - session.waiting_since).total_seconds() >= 5


async def test_warm_transfer_to_named_volunteer(db: AsyncSession) -> None:
    session_id = await add_session(db, urgency=3)
    _, me = await add_volunteer(db)
    _, peer = await add_volunteer(db)
    await assignments.claim(db, me, session_id, high_urgency_slots=SLOTS)
    made, _ = await assignments.transfer(
        db,
        me,
        session_id,
        to_volunteer_id=peer.id,
        to_supervisor=False,
        timeout_s=20,
        high_urgency_slots=SLOTS,
    )
    assert made is not None
    assert made.kind == "transfer"
    assert await _status(db, session_id) == "transferring"
    # The original holder still holds it until the peer accepts.
    await assignments.require_access(db, me, session_id, write=True)
    await assignments.accept(db, peer, session_id)
    assert await _status(db, session_id) == "active"
    with pytest.raises(assignments.NotAssigned):
        await assignments.require_access(db, me, session_id, write=False)
    await assignments.require_access(db, peer, session_id, write=True)
    # A high chat: the peer holds its full weight now, the holder got all of theirs back.
    assert await _load(db, me.id) == 0
    assert await _load(db, peer.id) == SLOTS


async def test_volunteer_cannot_touch_someone_elses_session(db: AsyncSession) -> None:
    session_id = await add_session(db)
    _, holder = await add_volunteer(db)
    _, stranger = await add_volunteer(db)
    _, supervisor = await add_volunteer(db, role="supervisor")
    await assignments.claim(db, holder, session_id, high_urgency_slots=SLOTS)
    with pytest.raises(assignments.NotAssigned):
        await assignments.read_transcript(db, stranger, session_id)
    with pytest.raises(assignments.NotAssigned):
        await assignments.close(db, stranger, session_id, disposition="other", risk_level=0)
    with pytest.raises(assignments.NotAssigned):
        await assignments.release_by(db, stranger, session_id)
    with pytest.raises(assignments.NoOffer):
        await assignments.accept(db, stranger, session_id)
    db.add(Message(session_id=session_id, seq=1, sender="visitor", text="hi", sent_at=utcnow()))
    await db.flush()
    _, messages = await assignments.read_transcript(db, supervisor, session_id)
    assert [m.seq for m in messages] == [1]
    reads = await db.scalar(
        select(func.count())
        .select_from(Event)
        .where(
            Event.subject_id == str(session_id),
            Event.action == "transcript_read",
            Event.actor_id == str(supervisor.id),
        )
    )
    assert reads == 1


async def test_next_pulls_the_most_urgent_and_respects_capacity(db: AsyncSession) -> None:
    await hide_other_sessions(db)
    low = await add_session(db, urgency=1, waited_s=50)
    imminent = await add_session(db, urgency=4)
    _, me = await add_volunteer(db, capacity=1)
    session, _ = await assignments.next_session(db, me, [imminent, low], high_urgency_slots=SLOTS)
    assert session.id == imminent
    with pytest.raises(assignments.AtCapacity):
        await assignments.next_session(db, me, [low], high_urgency_slots=SLOTS)
    assert await _status(db, low) == "waiting"


async def test_offline_volunteer_chats_requeued(db: AsyncSession) -> None:
    session_id = await add_session(db, urgency=3, waited_s=10)
    _, me = await add_volunteer(db)
    await assignments.claim(db, me, session_id, high_urgency_slots=SLOTS)
    await assignments.requeue_volunteer(db, me.id, include_active=True)
    assert await _status(db, session_id) == "waiting"
    rows = (
        await db.scalars(select(Assignment.status).where(Assignment.session_id == session_id))
    ).all()
    assert rows == ["requeued"]


async def test_a_decline_stops_counting_once_urgency_rises(
    db: AsyncSession, settings: Settings
) -> None:
    """A volunteer who declined a calm chat must still be offered it if it turns imminent."""
    session_id = await add_session(db, urgency=1, waited_s=10)
    _, volunteer = await add_volunteer(db)
    assert (
        await assignments.offer(
            db, session_id, volunteer.id, timeout_s=20, high_urgency_slots=SLOTS
        )
        is not None
    )
    await assignments.decline(db, volunteer, session_id)
    await db.flush()
    now = utcnow() + timedelta(seconds=1)
    assert (session_id, volunteer.id) in await recent_refusals(db, settings, now)

    record_event(
        db,
        actor_type="system",
        actor_id=None,
        action="urgency_raised",
        subject_type="session",
        subject_id=str(session_id),
        details={"from": 1, "to": 4},
    )
    db.add(
        Event(
            actor_type="system",
            actor_id=None,
            action="urgency_raised",
            subject_type="session",
            subject_id=str(uuid.uuid4()),
            details={},
        )
    )
    await db.flush()
    assert (session_id, volunteer.id) not in await recent_refusals(db, settings, now)
