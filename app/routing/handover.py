"""Handing a chat on: release (cold, back to the queue), transfer (warm, to someone), close
(wrap-up with a disposition and risk assessment); and the assignments of volunteers who went
away or of sessions that ended without them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatSession
from app.core.db import utcnow
from app.core.errors import NotFound, ValidationFailed
from app.routing.accounts import Principal
from app.routing.claims import (
    DISPOSITIONS,
    ENDED_STATUSES,
    LIVE_STATUSES,
    active_assignment,
    audit,
    end_assignment,
    end_offer,
    move,
    offer_slot,
)
from app.routing.errors import AtCapacity, NotAssigned, SessionTaken
from app.routing.models import Assignment, Disposition, Volunteer
from app.routing.notices import ROUTING_WAKE, Notice, OfferMade, session_update, visitor_notice
from app.routing.slots import free_slot
from app.triage.types import Level


async def require_holder(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> Assignment | None:
    """The active assignment the principal may act on (supervisors may act on any session)."""
    assignment = await active_assignment(db, session_id)
    if assignment is not None and assignment.volunteer_id == principal.id:
        return assignment
    if principal.is_supervisor:
        if await db.scalar(select(ChatSession.id).where(ChatSession.id == session_id)) is None:
            raise NotFound("no such session")
        return assignment
    raise NotAssigned("this session is not assigned to you")


async def _withdraw_transfer_offer(
    db: AsyncSession, session_id: uuid.UUID, now: datetime
) -> list[Notice]:
    pending = await db.scalar(
        select(Assignment).where(
            Assignment.session_id == session_id, Assignment.status == "offered"
        )
    )
    if pending is None:
        return []
    result = await db.execute(
        update(Assignment)
        .where(Assignment.id == pending.id, Assignment.status == "offered")
        .values(status="withdrawn", ended_at=now, end_reason="withdrawn")
        .returning(Assignment.slots)
        .execution_options(synchronize_session=False)
    )
    slots = result.scalar_one_or_none()
    if slots is None:
        return []
    await free_slot(db, pending.volunteer_id, slots, now)
    return [session_update(pending.volunteer_id, session_id, "offer_withdrawn")]


async def release(
    db: AsyncSession,
    principal: Principal | None,
    assignment: Assignment,
    *,
    reason: str = "released",
    now: datetime | None = None,
) -> list[Notice]:
    """Back to the queue with its urgency and original wait (``waiting_since`` is kept)."""
    now = now or utcnow()
    notices = await _withdraw_transfer_offer(db, assignment.session_id, now)
    # A cold transfer is a release whose reason says so (the status column holds 16 characters).
    status = "released" if reason == "transferred_to_queue" else reason
    if not await end_assignment(db, assignment, status, now, end_reason=reason):
        return notices
    await move(
        db,
        assignment.session_id,
        ("active", "transferring"),
        "waiting",
        reason=reason,
        now=now,
        actor=principal,
    )
    audit(
        db,
        principal,
        f"session_{reason}",
        assignment.session_id,
        volunteer_id=str(assignment.volunteer_id),
    )
    return [
        *notices,
        session_update(assignment.volunteer_id, assignment.session_id, reason),
        visitor_notice(assignment.session_id, "waiting"),
        ROUTING_WAKE,
    ]


async def release_by(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, *, now: datetime | None = None
) -> list[Notice]:
    assignment = await require_holder(db, principal, session_id)
    if assignment is None:
        raise SessionTaken("the session is not active")
    return await release(db, principal, assignment, now=now)


async def transfer(
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    to_volunteer_id: uuid.UUID | None,
    to_supervisor: bool,
    timeout_s: float,
    high_urgency_slots: int,
    now: datetime | None = None,
) -> tuple[OfferMade | None, list[Notice]]:
    """Warm transfer: offer to a named volunteer or an available supervisor while the current
    holder stays in the chat; with neither named it is a cold transfer back to the queue."""
    now = now or utcnow()
    holder = await require_holder(db, principal, session_id)
    if holder is None:
        raise SessionTaken("the session is not active")
    if to_volunteer_id is None and not to_supervisor:
        return None, await release(db, principal, holder, reason="transferred_to_queue", now=now)
    if to_volunteer_id is None:
        target = await db.scalar(
            select(Volunteer.id)
            .where(
                Volunteer.role.in_(("supervisor", "admin")),
                Volunteer.presence == "online",
                Volunteer.revoked_at.is_(None),
                Volunteer.load < Volunteer.capacity,
                Volunteer.id != holder.volunteer_id,
            )
            .order_by(Volunteer.load, Volunteer.idle_since)
            .limit(1)
        )
        if target is None:
            raise AtCapacity("no supervisor is online with a free slot")
        to_volunteer_id = target
    if to_volunteer_id == holder.volunteer_id:
        raise ValidationFailed("cannot transfer a session to its current holder")
    session = await move(
        db,
        session_id,
        "active",
        "transferring",
        reason="transfer_offered",
        now=now,
        actor=principal,
    )
    if session is None:
        raise SessionTaken("a transfer is already in progress")
    made = await offer_slot(
        db,
        session,
        to_volunteer_id,
        kind="transfer",
        undo=("transferring", "active"),
        timeout_s=timeout_s,
        high_urgency_slots=high_urgency_slots,
        now=now,
    )
    if made is None:
        raise AtCapacity("that volunteer is not online or has no free slot")
    audit(db, principal, "transfer_offered", session_id, to=str(to_volunteer_id))
    return made, made.notices(now)


async def close(
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    disposition: str,
    risk_level: int,
    notes: str | None = None,
    now: datetime | None = None,
) -> list[Notice]:
    """Wrap-up. The volunteer's risk assessment becomes the session urgency: the one way it may
    go down, and it is audited with both values."""
    now = now or utcnow()
    if disposition not in DISPOSITIONS:
        raise ValidationFailed(f"disposition must be one of {', '.join(DISPOSITIONS)}")
    if not 0 <= risk_level <= int(Level.imminent):
        raise ValidationFailed("risk_level must be 0..4")
    holder = await require_holder(db, principal, session_id)
    if holder is None and not principal.is_supervisor:
        raise NotAssigned("this session is not assigned to you")
    before = await db.scalar(select(ChatSession.urgency).where(ChatSession.id == session_id))
    notices = await _withdraw_transfer_offer(db, session_id, now)
    if holder is None:
        # A supervisor closing a session nobody holds (waiting or offered): clear any offer.
        pending = await db.scalar(
            select(Assignment).where(
                Assignment.session_id == session_id, Assignment.status == "offered"
            )
        )
        if pending is not None:
            notices.extend(await end_offer(db, pending, "withdrawn", now, principal))
    session = await move(
        db,
        session_id,
        LIVE_STATUSES,
        "closed",
        reason="wrap_up",
        now=now,
        actor=principal,
        urgency=risk_level,
    )
    if session is None:
        raise SessionTaken("the session is already over")
    if holder is not None:
        await end_assignment(db, holder, "closed", now)
        notices.append(session_update(holder.volunteer_id, session_id, "closed"))
    db.add(
        Disposition(
            session_id=session_id,
            volunteer_id=principal.id,
            code=disposition,
            notes=notes,
            risk_level=risk_level,
            created_at=now,
        )
    )
    if before is not None and before != risk_level:
        audit(
            db,
            principal,
            "urgency_lowered" if risk_level < before else "urgency_raised",
            session_id,
            before=before,
            after=risk_level,
            by="risk_assessment",
        )
    audit(
        db, principal, "session_closed", session_id, disposition=disposition, risk_level=risk_level
    )
    return [*notices, visitor_notice(session_id, "closed")]


async def requeue_volunteer(
    db: AsyncSession, volunteer_id: uuid.UUID, *, include_active: bool, now: datetime | None = None
) -> list[Notice]:
    now = now or utcnow()
    open_rows = (
        await db.scalars(
            select(Assignment).where(
                Assignment.volunteer_id == volunteer_id,
                Assignment.status.in_(("offered", "active") if include_active else ("offered",)),
            )
        )
    ).all()
    notices: list[Notice] = []
    for row in open_rows:
        if row.status == "offered":
            notices.extend(await end_offer(db, row, "withdrawn", now, None))
        else:
            notices.extend(await release(db, None, row, reason="requeued", now=now))
    return notices


async def end_orphans(db: AsyncSession, *, now: datetime | None = None) -> list[Notice]:
    """Free the slots of volunteers whose session ended without them (visitor left, erased,
    handed off): their assignment ends and their socket is told."""
    now = now or utcnow()
    rows = (
        await db.execute(
            select(Assignment, ChatSession.status)
            .join(ChatSession, ChatSession.id == Assignment.session_id)
            .where(
                Assignment.status.in_(("offered", "active")),
                ChatSession.status.in_(ENDED_STATUSES),
            )
            .limit(200)
        )
    ).all()
    notices: list[Notice] = []
    for assignment, session_status in rows:
        if await end_assignment(db, assignment, "session_ended", now):
            audit(
                db,
                None,
                "assignment_ended",
                assignment.session_id,
                volunteer_id=str(assignment.volunteer_id),
                session_status=session_status,
            )
            notices.append(
                session_update(assignment.volunteer_id, assignment.session_id, session_status)
            )
    return notices
