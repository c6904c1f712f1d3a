"""Offers, claims, transfer, release and wrap-up: every change of who holds a session.

Correctness rests on the database, never on process memory, so any number of instances may
route at once:

* a session is claimed by ``UPDATE chat_sessions ... WHERE status = 'waiting' RETURNING``: of two
  racing claimers exactly one sees a row come back;
* a volunteer's slots are taken by ``UPDATE volunteers SET load = load + :n WHERE
  load + :n <= capacity``, so capacity holds however many routers offer to the same person
  (a ``high``+ chat may take more than one slot: see "Slot accounting" below);
* partial unique indexes on ``assignments`` refuse a second active holder or a second pending
  offer for one session, as a last line of defence.

Each step runs in the caller's transaction, rows are always touched in the same order (session,
then volunteer, then assignment), and a step that loses a race undoes what it did in the same
transaction before returning, so the caller may simply commit.

Functions return ``Notice`` lists: what to tell which socket. The boundary publishes them only
after its commit, so nobody hears about a change that was rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record_event
from app.chat.models import ChatSession, Message
from app.core.db import utcnow
from app.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.routing.accounts import Principal
from app.routing.models import OPEN_STATUSES, Assignment, Disposition, Volunteer
from app.triage.types import Level

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

# Sessions a person can still be helped in; everything else is over.
LIVE_STATUSES = ("waiting", "offered", "active", "transferring")


class SessionTaken(Conflict):
    code = "session_taken"


class AtCapacity(Conflict):
    code = "at_capacity"


class NoOffer(Conflict):
    code = "no_offer"


class NotAssigned(Forbidden):
    code = "not_assigned"


class QueueEmpty(NotFound):
    code = "queue_empty"


# ---------------------------------------------------------------------------------------------
# What to tell whom, after commit.


def volunteer_channel(volunteer_id: uuid.UUID | str) -> str:
    return f"volunteer:{volunteer_id}"


SUPERVISORS_CHANNEL = "supervisors"
# Wakes every instance's router: something changed that may allow a new offer.
ROUTING_CHANNEL = "routing"


@dataclass(frozen=True, slots=True)
class Notice:
    """A frame for a volunteer channel, or a visitor status change for a session."""

    channel: str | None = None
    frame: dict[str, Any] = field(default_factory=dict)
    # Set when the visitor of this session must get a `status` frame.
    visitor_status: tuple[uuid.UUID, str] | None = None


def _visitor(session_id: uuid.UUID, status: str) -> Notice:
    return Notice(visitor_status=(session_id, status))


def _session_update(
    volunteer_id: uuid.UUID, session_id: uuid.UUID, status: str, **extra: Any
) -> Notice:
    return Notice(
        channel=volunteer_channel(volunteer_id),
        frame={"type": "session", "session_id": str(session_id), "status": status, **extra},
    )


ROUTING_WAKE = Notice(channel=ROUTING_CHANNEL, frame={"type": "wake"})


@dataclass(frozen=True, slots=True)
class OfferMade:
    assignment_id: int
    session_id: uuid.UUID
    volunteer_id: uuid.UUID
    urgency: int
    signals: list[str]
    waited_s: float
    expires_at: datetime
    kind: str

    def frame(self, now: datetime) -> dict[str, Any]:
        return {
            "type": "offer",
            "session_id": str(self.session_id),
            "urgency": Level(self.urgency).name,
            "urgency_value": self.urgency,
            "signals": self.signals,
            "waited_s": round(self.waited_s, 1),
            "expires_in_s": max(0.0, round((self.expires_at - now).total_seconds(), 1)),
            "kind": self.kind,
        }

    def notices(self, now: datetime) -> list[Notice]:
        return [
            Notice(channel=volunteer_channel(self.volunteer_id), frame=self.frame(now)),
            *([] if self.kind == "transfer" else [_visitor(self.session_id, "offered")]),
        ]


def assigned_frame(session: ChatSession, kind: str, now: datetime) -> dict[str, Any]:
    return {
        "type": "assigned",
        "session_id": str(session.id),
        "urgency": Level(session.urgency).name,
        "urgency_value": session.urgency,
        "signals": list(session.signals or []),
        "waited_s": round((now - session.waiting_since).total_seconds(), 1),
        "last_seq": session.last_seq,
        "locale": session.locale,
        "kind": kind,
    }


# ---------------------------------------------------------------------------------------------
# Slot accounting: the only statements that change `volunteers.load`.
#
# A chat whose session is ``high`` or ``imminent`` is worth ``high_urgency_slots`` slots
# (BEACON_HIGH_URGENCY_SLOTS, default 2), so that a volunteer in an imminent chat is not handed
# two more at once. Weighting must never turn an urgent person away, hence the rule:
#
# * a volunteer may take any chat while they have at least one free slot;
# * the chat takes ``min(weight, capacity - load)`` slots: load never passes capacity;
# * the assignment records what it took (``Assignment.slots``), and ending it in any way
#   (close, release, transfer, requeue, decline, expiry, withdrawal, orphan) gives back exactly
#   that, read from the row the ending UPDATE changed, whatever the urgency became meanwhile;
# * an open assignment of a ``high``+ session that holds fewer slots than its weight (it was
#   clamped, or the session's urgency rose after the offer) picks up the missing slots when
#   they are free (``top_up``, run by every routing pass before it plans), again never
#   past capacity and never by taking a chat away. Urgency only falls at wrap-up, which ends
#   the assignment, so an open assignment's slots never shrink.


def slot_weight(urgency: int, high_urgency_slots: int) -> int:
    """Slots a chat of this urgency is worth (before clamping to the volunteer's free slots)."""
    return max(1, high_urgency_slots) if urgency >= Level.high else 1


async def _take_slots(
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


async def _take_slot(
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
    return await _take_slots(
        db, volunteer_id, slot_weight(urgency, high_urgency_slots), *conditions
    )


async def _free_slot(db: AsyncSession, volunteer_id: uuid.UUID, slots: int, now: datetime) -> None:
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
                Assignment.status.in_(OPEN_STATUSES),
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
            Assignment.status.in_(OPEN_STATUSES),
            Assignment.slots == held.slots,
        )
        .values(slots=high_urgency_slots)
        .returning(Assignment.id)
        .execution_options(synchronize_session=False)
    )
    if claimed.scalar_one_or_none() is None:
        return 0
    got = await _take_slots(db, held.volunteer_id, high_urgency_slots - held.slots)
    if held.slots + got < high_urgency_slots:
        await db.execute(
            update(Assignment)
            .where(Assignment.id == held.assignment_id)
            .values(slots=held.slots + got)
            .execution_options(synchronize_session=False)
        )
    return got


async def _set_session_status(
    db: AsyncSession,
    session_id: uuid.UUID,
    *,
    from_statuses: Sequence[str],
    to: str,
    now: datetime,
    **values: Any,
) -> ChatSession | None:
    """The conditional transition every claim is built on; None if someone else moved first."""
    result = await db.execute(
        update(ChatSession)
        .where(ChatSession.id == session_id, ChatSession.status.in_(from_statuses))
        .values(status=to, updated_at=now, **values)
        .returning(ChatSession)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


def _audit(
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


# ---------------------------------------------------------------------------------------------
# Offers.


async def offer(
    db: AsyncSession,
    session_id: uuid.UUID,
    volunteer_id: uuid.UUID,
    *,
    timeout_s: float,
    high_urgency_slots: int,
    now: datetime | None = None,
) -> OfferMade | None:
    """Offer a waiting session to an online volunteer with a free slot; None if either is gone."""
    now = now or utcnow()
    session = await _set_session_status(
        db, session_id, from_statuses=("waiting",), to="offered", now=now
    )
    if session is None:
        return None
    made = await _offer_slot(
        db,
        session,
        volunteer_id,
        kind="route",
        undo=("offered", "waiting"),
        timeout_s=timeout_s,
        high_urgency_slots=high_urgency_slots,
        now=now,
    )
    if made is None:
        return None
    _audit(
        db,
        None,
        "session_offered",
        session_id,
        volunteer_id=str(volunteer_id),
        urgency=session.urgency,
    )
    return made


async def _offer_slot(
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
    slots = await _take_slot(
        db,
        volunteer_id,
        urgency=session.urgency,
        high_urgency_slots=high_urgency_slots,
        online_only=True,
    )
    if not slots:
        await _set_session_status(db, session.id, from_statuses=(undo[0],), to=undo[1], now=now)
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


async def _write_first(db: AsyncSession, volunteer_id: uuid.UUID) -> None:
    """SQLite only: take the database write lock before reading. A SQLite transaction that read
    first and then writes after another writer committed fails ("database is locked") instead
    of waiting; Postgres needs no such thing (its conditional UPDATEs re-check after the lock)."""
    if db.get_bind().dialect.name == "sqlite":
        await db.execute(
            update(Volunteer)
            .where(Volunteer.id == volunteer_id)
            .values(load=Volunteer.load)
            .execution_options(synchronize_session=False)
        )


async def _open_offer(
    db: AsyncSession, session_id: uuid.UUID, volunteer_id: uuid.UUID
) -> Assignment | None:
    await _write_first(db, volunteer_id)
    return await db.scalar(
        select(Assignment).where(
            Assignment.session_id == session_id,
            Assignment.volunteer_id == volunteer_id,
            Assignment.status == "offered",
        )
    )


async def accept(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, *, now: datetime | None = None
) -> tuple[ChatSession, list[Notice]]:
    now = now or utcnow()
    pending = await _open_offer(db, session_id, principal.id)
    if pending is None or (pending.expires_at is not None and pending.expires_at <= now):
        raise NoOffer("no pending offer of this session to you (it may have expired)")
    notices: list[Notice] = []
    if pending.kind == "transfer":
        session = await _set_session_status(
            db, session_id, from_statuses=("transferring",), to="active", now=now
        )
        if session is None:
            raise NoOffer("the transfer was cancelled")
        previous = await db.scalar(
            select(Assignment).where(
                Assignment.session_id == session_id, Assignment.status == "active"
            )
        )
        if previous is not None:
            await _end_assignment(db, previous, "transferred", now)
            notices.append(
                _session_update(
                    previous.volunteer_id, session_id, "transferred", to=str(principal.id)
                )
            )
    else:
        session = await _set_session_status(
            db, session_id, from_statuses=("offered",), to="active", now=now
        )
        if session is None:
            raise NoOffer("the offer is no longer open")
    claimed = await db.execute(
        update(Assignment)
        .where(Assignment.id == pending.id, Assignment.status == "offered")
        .values(status="active", responded_at=now)
        .returning(Assignment.id)
        .execution_options(synchronize_session=False)
    )
    if claimed.scalar_one_or_none() is None:
        raise NoOffer("the offer is no longer open")
    _audit(db, principal, "session_accepted", session_id, kind=pending.kind)
    notices.append(
        Notice(
            channel=volunteer_channel(principal.id),
            frame=assigned_frame(session, pending.kind, now),
        )
    )
    notices.append(_visitor(session_id, "active"))
    return session, notices


async def _end_offer(
    db: AsyncSession, pending: Assignment, status: str, now: datetime, actor: Principal | None
) -> list[Notice]:
    """Decline, expiry or withdrawal: the slot frees and the session goes back where it was."""
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
    if pending.kind == "transfer":
        await _set_session_status(
            db, pending.session_id, from_statuses=("transferring",), to="active", now=now
        )
    else:
        await _set_session_status(
            db, pending.session_id, from_statuses=("offered",), to="waiting", now=now
        )
    await _free_slot(db, pending.volunteer_id, slots, now)
    _audit(
        db,
        actor,
        f"offer_{status}",
        pending.session_id,
        volunteer_id=str(pending.volunteer_id),
        kind=pending.kind,
    )
    notices = [
        _session_update(pending.volunteer_id, pending.session_id, f"offer_{status}"),
        ROUTING_WAKE,
    ]
    if pending.kind == "transfer":
        holder = await db.scalar(
            select(Assignment.volunteer_id).where(
                Assignment.session_id == pending.session_id, Assignment.status == "active"
            )
        )
        if holder is not None:
            notices.append(_session_update(holder, pending.session_id, f"transfer_{status}"))
    else:
        notices.append(_visitor(pending.session_id, "waiting"))
    return notices


async def decline(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, *, now: datetime | None = None
) -> list[Notice]:
    now = now or utcnow()
    pending = await _open_offer(db, session_id, principal.id)
    if pending is None:
        raise NoOffer("no pending offer of this session to you")
    return await _end_offer(db, pending, "declined", now, principal)


async def expire_offers(db: AsyncSession, *, now: datetime | None = None) -> list[Notice]:
    """Unanswered offers past their deadline go back to the queue (for the next volunteer)."""
    now = now or utcnow()
    overdue = (
        await db.scalars(
            select(Assignment)
            .where(Assignment.status == "offered", Assignment.expires_at <= now)
            .order_by(Assignment.expires_at)
            .limit(200)
        )
    ).all()
    notices: list[Notice] = []
    for pending in overdue:
        notices.extend(await _end_offer(db, pending, "expired", now, None))
    return notices


# ---------------------------------------------------------------------------------------------
# Pulling work: claim a named session, or the most urgent eligible one.


async def _claim_waiting(
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    now: datetime,
    high_urgency_slots: int,
) -> ChatSession | None:
    session = await _set_session_status(
        db, session_id, from_statuses=("waiting",), to="active", now=now
    )
    if session is None:
        return None
    slots = await _take_slot(
        db,
        principal.id,
        urgency=session.urgency,
        high_urgency_slots=high_urgency_slots,
        online_only=False,
    )
    if not slots:
        await _set_session_status(db, session_id, from_statuses=("active",), to="waiting", now=now)
        raise AtCapacity("you are at capacity")
    db.add(
        Assignment(
            session_id=session_id,
            volunteer_id=principal.id,
            status="active",
            kind="pull",
            offered_at=now,
            responded_at=now,
            slots=slots,
        )
    )
    await db.flush()
    _audit(db, principal, "session_claimed", session_id, urgency=session.urgency)
    return session


async def claim(
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    high_urgency_slots: int,
    now: datetime | None = None,
) -> tuple[ChatSession, list[Notice]]:
    now = now or utcnow()
    pending = await _open_offer(db, session_id, principal.id)
    if pending is not None:
        return await accept(db, principal, session_id, now=now)
    session = await _claim_waiting(db, principal, session_id, now, high_urgency_slots)
    if session is None:
        exists = await db.scalar(select(ChatSession.status).where(ChatSession.id == session_id))
        if exists is None:
            raise NotFound("no such session")
        raise SessionTaken("the session is not waiting (someone else may have taken it)")
    return session, _claimed_notices(principal, session, now)


def _claimed_notices(principal: Principal, session: ChatSession, now: datetime) -> list[Notice]:
    return [
        Notice(channel=volunteer_channel(principal.id), frame=assigned_frame(session, "pull", now)),
        _visitor(session.id, "active"),
    ]


async def next_session(
    db: AsyncSession,
    principal: Principal,
    candidates: Sequence[uuid.UUID],
    *,
    high_urgency_slots: int,
    now: datetime | None = None,
) -> tuple[ChatSession, list[Notice]]:
    """Claim the first of ``candidates`` (already in priority order) nobody else has taken."""
    now = now or utcnow()
    for session_id in candidates:
        session = await _claim_waiting(db, principal, session_id, now, high_urgency_slots)
        if session is not None:
            return session, _claimed_notices(principal, session, now)
    raise QueueEmpty("no waiting session you are eligible for")


# ---------------------------------------------------------------------------------------------
# Handing a chat on: release (cold, back to the queue), transfer (warm, to someone), close.


async def _end_assignment(
    db: AsyncSession,
    assignment: Assignment,
    status: str,
    now: datetime,
    *,
    end_reason: str | None = None,
) -> bool:
    """End it and give back the slots it holds, as read from the row this UPDATE changed (so a
    top-up that committed meanwhile is given back too)."""
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
    await _free_slot(db, assignment.volunteer_id, slots, now)
    return True


async def _active_assignment(db: AsyncSession, session_id: uuid.UUID) -> Assignment | None:
    return await db.scalar(
        select(Assignment).where(Assignment.session_id == session_id, Assignment.status == "active")
    )


async def _require_holder(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> Assignment | None:
    """The active assignment the principal may act on (supervisors may act on any session)."""
    assignment = await _active_assignment(db, session_id)
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
    await _free_slot(db, pending.volunteer_id, slots, now)
    return [_session_update(pending.volunteer_id, session_id, "offer_withdrawn")]


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
    if not await _end_assignment(db, assignment, status, now, end_reason=reason):
        return notices
    await _set_session_status(
        db,
        assignment.session_id,
        from_statuses=("active", "transferring"),
        to="waiting",
        now=now,
    )
    _audit(
        db,
        principal,
        f"session_{reason}",
        assignment.session_id,
        volunteer_id=str(assignment.volunteer_id),
    )
    return [
        *notices,
        _session_update(assignment.volunteer_id, assignment.session_id, reason),
        _visitor(assignment.session_id, "waiting"),
        ROUTING_WAKE,
    ]


async def release_by(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, *, now: datetime | None = None
) -> list[Notice]:
    assignment = await _require_holder(db, principal, session_id)
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
    holder = await _require_holder(db, principal, session_id)
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
    session = await _set_session_status(
        db, session_id, from_statuses=("active",), to="transferring", now=now
    )
    if session is None:
        raise SessionTaken("a transfer is already in progress")
    made = await _offer_slot(
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
    _audit(db, principal, "transfer_offered", session_id, to=str(to_volunteer_id))
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
    holder = await _require_holder(db, principal, session_id)
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
            notices.extend(await _end_offer(db, pending, "withdrawn", now, principal))
    session = await _set_session_status(
        db,
        session_id,
        from_statuses=LIVE_STATUSES,
        to="closed",
        now=now,
        closed_at=now,
        urgency=risk_level,
    )
    if session is None:
        raise SessionTaken("the session is already over")
    if holder is not None:
        await _end_assignment(db, holder, "closed", now)
        notices.append(_session_update(holder.volunteer_id, session_id, "closed"))
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
        _audit(
            db,
            principal,
            "urgency_lowered" if risk_level < before else "urgency_raised",
            session_id,
            before=before,
            after=risk_level,
            by="risk_assessment",
        )
    _audit(
        db, principal, "session_closed", session_id, disposition=disposition, risk_level=risk_level
    )
    return [*notices, _visitor(session_id, "closed")]


# ---------------------------------------------------------------------------------------------
# Volunteers who went away: their offers are withdrawn, their chats go back to the queue.


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
            notices.extend(await _end_offer(db, row, "withdrawn", now, None))
        else:
            notices.extend(await release(db, None, row, reason="requeued", now=now))
    return notices


# ---------------------------------------------------------------------------------------------
# Rights: who may read or write a session's transcript.


async def require_access(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, *, write: bool
) -> ChatSession:
    """Supervisors: every session. Volunteers: sessions offered to them (read) or held by them
    (read and write). Anything else is refused, and a session's existence is not revealed."""
    session = await db.scalar(select(ChatSession).where(ChatSession.id == session_id))
    if principal.is_supervisor:
        if session is None:
            raise NotFound("no such session")
        return session
    statuses = ("active",) if write else ("offered", "active")
    mine = await db.scalar(
        select(Assignment.id).where(
            and_(
                Assignment.session_id == session_id,
                Assignment.volunteer_id == principal.id,
                Assignment.status.in_(statuses),
            )
        )
    )
    if session is None or mine is None:
        raise NotAssigned("this session is not offered or assigned to you")
    return session


async def read_transcript(
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    after_seq: int = 0,
    purpose: str = "transcript",
) -> tuple[ChatSession, list[Message]]:
    """Every read of a transcript is an audited event, in the same transaction as the read."""
    session = await require_access(db, principal, session_id, write=False)
    messages = (
        await db.scalars(
            select(Message)
            .where(Message.session_id == session_id, Message.seq > after_seq)
            .order_by(Message.seq)
        )
    ).all()
    _audit(
        db,
        principal,
        "transcript_read",
        session_id,
        after_seq=after_seq,
        count=len(messages),
        purpose=purpose,
    )
    return session, list(messages)


# ---------------------------------------------------------------------------------------------
# Sessions that ended elsewhere (the visitor closed, erased or abandoned it; a handoff).

ENDED_STATUSES = ("closed", "abandoned", "handed_off")


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
        if await _end_assignment(db, assignment, "session_ended", now):
            _audit(
                db,
                None,
                "assignment_ended",
                assignment.session_id,
                volunteer_id=str(assignment.volunteer_id),
                session_status=session_status,
            )
            notices.append(
                _session_update(assignment.volunteer_id, assignment.session_id, session_status)
            )
    return notices
