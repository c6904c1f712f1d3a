"""Slot accounting: the only statements that change ``volunteers.load``.

A chat whose session is ``high`` or ``imminent`` is worth ``high_urgency_slots`` slots
(BEACON_HIGH_URGENCY_SLOTS, default 2), so that a volunteer in an imminent chat is not handed
two more at once. Weighting must never turn an urgent person away, hence the rule:

* a volunteer may take any chat while they have at least one free slot;
* the chat takes ``min(weight, capacity - load)`` slots: load never passes capacity;
* the assignment records what it took (``Assignment.slots``), and ending it in any way
  (close, release, transfer, requeue, decline, expiry, withdrawal, orphan) gives back exactly
  that, read from the row the ending UPDATE changed, whatever the urgency became meanwhile;
* an open assignment of a ``high``+ session that holds fewer slots than its weight (it was
  clamped, or the session's urgency rose after the offer) picks up the missing slots when
  they are free (``top_up``, run by every routing pass before it plans), again never
  past capacity and never by taking a chat away. Urgency only falls at wrap-up, which ends
  the assignment, so an open assignment's slots never shrink.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatSession
from app.domain.assignment import HOLDING
from app.domain.machine import values
from app.routing.models import Assignment, Volunteer
from app.triage.types import Level


def slot_weight(urgency: int, high_urgency_slots: int) -> int:
    """Slots a chat of this urgency is worth (before clamping to the volunteer's free slots)."""
    return max(1, high_urgency_slots) if urgency >= Level.high else 1


async def take_slots(
    db: AsyncSession, volunteer_id: uuid.UUID, want: int, *conditions: ColumnElement[bool]
) -> int:
    """Take up to ``want`` of the volunteer's free slots, as many as are free; 0 if none is.

    One conditional UPDATE per attempt, largest first: each is atomic on its own, so a racing
    claimer can only make this take fewer slots, never push load past capacity."""
    for slots in range(want, 0, -1):
        result = await db.execute(
            update(Volunteer)
            .where(
                Volunteer.id == volunteer_id,
                Volunteer.load + slots <= Volunteer.capacity,
                *conditions,
            )
            .values(load=Volunteer.load + slots)
            .returning(Volunteer.id)
            .execution_options(synchronize_session=False)
        )
        if result.scalar_one_or_none() is not None:
            return slots
    return 0


async def take_slot(
    db: AsyncSession,
    volunteer_id: uuid.UUID,
    *,
    urgency: int,
    high_urgency_slots: int,
    online_only: bool,
) -> int:
    """Slots taken for a new offer or chat of this urgency; 0 if the volunteer may not take it
    (no free slot at all, revoked, or not online when ``online_only``)."""
    conditions: list[ColumnElement[bool]] = [Volunteer.revoked_at.is_(None)]
    if online_only:
        conditions.append(Volunteer.presence == "online")
    return await take_slots(db, volunteer_id, slot_weight(urgency, high_urgency_slots), *conditions)


async def free_slot(db: AsyncSession, volunteer_id: uuid.UUID, slots: int, now: datetime) -> None:
    await db.execute(
        update(Volunteer)
        .where(Volunteer.id == volunteer_id, Volunteer.load > 0)
        .values(
            # Never below zero (the CHECK would abort the whole transaction over a miscount).
            load=case((Volunteer.load > slots, Volunteer.load - slots), else_=0),
            idle_since=now,
        )
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True, slots=True)
class UnderWeight:
    """An open assignment of a ``high``+ session holding fewer slots than its weight."""

    assignment_id: int
    volunteer_id: uuid.UUID
    slots: int


async def under_weight(
    db: AsyncSession, *, high_urgency_slots: int, limit: int = 200
) -> list[UnderWeight]:
    if high_urgency_slots <= 1:
        return []
    rows = (
        await db.execute(
            select(Assignment.id, Assignment.volunteer_id, Assignment.slots)
            .join(ChatSession, ChatSession.id == Assignment.session_id)
            .where(
                Assignment.status.in_(values(HOLDING)),
                Assignment.slots < high_urgency_slots,
                ChatSession.urgency >= int(Level.high),
            )
            .order_by(Assignment.id)
            .limit(limit)
        )
    ).all()
    return [UnderWeight(row.id, row.volunteer_id, row.slots) for row in rows]


async def top_up(db: AsyncSession, held: UnderWeight, *, high_urgency_slots: int) -> int:
    """Take the missing slots of one under-weight assignment that are free now; returns how
    many were added (0 if none is free, or the assignment ended or changed meanwhile).

    Safe on every instance at once. The assignment row is changed first, conditionally on the
    slots it was read with - the same order (assignment, then volunteer) in which every ending
    frees slots, so the two serialise on that row and an ending returns what the top-up left.
    Whatever could not be taken is written back before the transaction ends. The boundary runs
    one top-up per transaction, so it never holds several volunteers' rows at once."""
    claimed = await db.execute(
        update(Assignment)
        .where(
            Assignment.id == held.assignment_id,
            Assignment.status.in_(values(HOLDING)),
            Assignment.slots == held.slots,
        )
        .values(slots=high_urgency_slots)
        .returning(Assignment.id)
        .execution_options(synchronize_session=False)
    )
    if claimed.scalar_one_or_none() is None:
        return 0
    got = await take_slots(db, held.volunteer_id, high_urgency_slots - held.slots)
    if held.slots + got < high_urgency_slots:
        await db.execute(
            update(Assignment)
            .where(Assignment.id == held.assignment_id)
            .values(slots=held.slots + got)
            .execution_options(synchronize_session=False)
        )
    return got
