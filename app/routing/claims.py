"""The steps every change of who holds a session is built from: the session's conditional
transition (through :func:`app.chat.lifecycle.transition`), ending an offer or an assignment
(giving back exactly the slots it held), and the audit row."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import SYSTEM, Actor, record_event
from app.chat.lifecycle import transition
from app.chat.models import ChatSession
from app.core.db import take_write_lock
from app.domain.assignment import ASSIGNMENT, AssignmentStatus
from app.domain.machine import values
from app.domain.session import ENDED, LIVE, SessionStatus
from app.routing.accounts import Principal
from app.routing.models import Assignment, Volunteer
from app.routing.notices import ROUTING_WAKE, Notice, OfferMade, session_update, visitor_notice
from app.routing.slots import free_slot, take_slot

DISPOSITIONS = (
    "supported",
    "safety_plan",
    "referred",
    "emergency_services",
    "handed_off",
    "visitor_left",
    "inappropriate",
    "other",
)


LIVE_STATUSES = values(LIVE)


ENDED_STATUSES = values(ENDED)


def actor_of(principal: Principal | None) -> Actor:
    return SYSTEM if principal is None else Actor(principal.role, principal.actor_id)


async def move(
    db: AsyncSession,
    session_id: uuid.UUID,
    source: str | Sequence[str],
    to: str,
    *,
    reason: str,
    now: datetime,
    actor: Principal | None = None,
    **also: Any,
) -> ChatSession | None:
    """The conditional transition every claim is built on; None if someone else moved first."""
    moved = await transition(
        db,
        session_id,
        SessionStatus(to),
        reason=reason,
        sources=[source] if isinstance(source, str) else source,
        actor=actor_of(actor),
        now=now,
        also=also or None,
    )
    return None if moved is None else moved.session


def audit(
    db: AsyncSession,
    actor: Principal | None,
    action: str,
    session_id: uuid.UUID,
    **details: Any,
) -> None:
    record_event(
        db,
        actor_type=actor.role if actor else "system",
        actor_id=actor.actor_id if actor else None,
        action=action,
        subject_type="session",
        subject_id=str(session_id),
        details=details,
    )


async def open_offer(
    db: AsyncSession, session_id: uuid.UUID, volunteer_id: uuid.UUID
) -> Assignment | None:
    await take_write_lock(db, Volunteer)
    return await db.scalar(
        select(Assignment).where(
            Assignment.session_id == session_id,
            Assignment.volunteer_id == volunteer_id,
            Assignment.status == "offered",
        )
    )


async def end_offer(
    db: AsyncSession, pending: Assignment, status: str, now: datetime, actor: Principal | None
) -> list[Notice]:
    """Decline, expiry or withdrawal: the slot frees and the session goes back where it was."""
    ASSIGNMENT.check([AssignmentStatus.offered], AssignmentStatus(status))
    result = await db.execute(
        update(Assignment)
        .where(Assignment.id == pending.id, Assignment.status == "offered")
        .values(status=status, responded_at=now, ended_at=now, end_reason=status)
        .returning(Assignment.slots)
        .execution_options(synchronize_session=False)
    )
    slots = result.scalar_one_or_none()
    if slots is None:
        return []
    transfer = pending.kind == "transfer"
    source, back = ("transferring", "active") if transfer else ("offered", "waiting")
    await move(db, pending.session_id, source, back, reason=f"offer_{status}", now=now, actor=actor)
    await free_slot(db, pending.volunteer_id, slots, now)
    audit(
        db,
        actor,
        f"offer_{status}",
        pending.session_id,
        volunteer_id=str(pending.volunteer_id),
        kind=pending.kind,
    )
    notices = [
        session_update(pending.volunteer_id, pending.session_id, f"offer_{status}"),
        ROUTING_WAKE,
    ]
    if pending.kind == "transfer":
        holder = await db.scalar(
            select(Assignment.volunteer_id).where(
                Assignment.session_id == pending.session_id, Assignment.status == "active"
            )
        )
        if holder is not None:
            notices.append(session_update(holder, pending.session_id, f"transfer_{status}"))
    else:
        notices.append(visitor_notice(pending.session_id, "waiting"))
    return notices


async def end_assignment(
    db: AsyncSession,
    assignment: Assignment,
    status: str,
    now: datetime,
    *,
    end_reason: str | None = None,
) -> bool:
    """End it and give back the slots it holds, as read from the row this UPDATE changed (so a
    top-up that committed meanwhile is given back too)."""
    ASSIGNMENT.check([assignment.status], AssignmentStatus(status))
    result = await db.execute(
        update(Assignment)
        .where(Assignment.id == assignment.id, Assignment.status == assignment.status)
        .values(status=status, ended_at=now, end_reason=end_reason or status)
        .returning(Assignment.slots)
        .execution_options(synchronize_session=False)
    )
    slots = result.scalar_one_or_none()
    if slots is None:
        return False
    await free_slot(db, assignment.volunteer_id, slots, now)
    return True


async def active_assignment(db: AsyncSession, session_id: uuid.UUID) -> Assignment | None:
    return await db.scalar(
        select(Assignment).where(Assignment.session_id == session_id, Assignment.status == "active")
    )


async def offer_slot(
    db: AsyncSession,
    session: ChatSession,
    volunteer_id: uuid.UUID,
    *,
    kind: str,
    undo: tuple[str, str],
    timeout_s: float,
    high_urgency_slots: int,
    now: datetime,
) -> OfferMade | None:
    """Take the volunteer's slots and record the offer. With no free slot (or the volunteer
    gone offline) the session's status goes back ``undo = (from, to)`` and None is returned."""
    slots = await take_slot(
        db,
        volunteer_id,
        urgency=session.urgency,
        high_urgency_slots=high_urgency_slots,
        online_only=True,
    )
    if not slots:
        await move(db, session.id, undo[0], undo[1], reason="no_free_slot", now=now)
        return None
    expires_at = now + timedelta(seconds=timeout_s)
    assignment = Assignment(
        session_id=session.id,
        volunteer_id=volunteer_id,
        status="offered",
        kind=kind,
        offered_at=now,
        expires_at=expires_at,
        slots=slots,
    )
    db.add(assignment)
    await db.flush()
    return OfferMade(
        assignment_id=assignment.id,
        session_id=session.id,
        volunteer_id=volunteer_id,
        urgency=session.urgency,
        signals=list(session.signals or []),
        waited_s=(now - session.waiting_since).total_seconds(),
        expires_at=expires_at,
        kind=kind,
    )
