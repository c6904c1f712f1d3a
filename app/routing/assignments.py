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
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatSession
from app.core.db import utcnow
from app.core.errors import NotFound
from app.routing.accounts import Principal
from app.routing.claims import audit, end_assignment, end_offer, move, offer_slot, open_offer
from app.routing.errors import AtCapacity, NoOffer, QueueEmpty, SessionTaken
from app.routing.models import Assignment
from app.routing.notices import (
    Notice,
    OfferMade,
    assigned_frame,
    session_update,
    visitor_notice,
    volunteer_channel,
)
from app.routing.slots import take_slot


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
    session = await move(db, session_id, "waiting", "offered", reason="offered", now=now)
    if session is None:
        return None
    made = await offer_slot(
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
    audit(
        db,
        None,
        "session_offered",
        session_id,
        volunteer_id=str(volunteer_id),
        urgency=session.urgency,
    )
    return made


async def accept(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, *, now: datetime | None = None
) -> tuple[ChatSession, list[Notice]]:
    now = now or utcnow()
    pending = await open_offer(db, session_id, principal.id)
    if pending is None or (pending.expires_at is not None and pending.expires_at <= now):
        raise NoOffer("no pending offer of this session to you (it may have expired)")
    notices: list[Notice] = []
    if pending.kind == "transfer":
        session = await move(
            db,
            session_id,
            "transferring",
            "active",
            reason="transfer_accepted",
            now=now,
            actor=principal,
        )
        if session is None:
            raise NoOffer("the transfer was cancelled")
        previous = await db.scalar(
            select(Assignment).where(
                Assignment.session_id == session_id, Assignment.status == "active"
            )
        )
        if previous is not None:
            await end_assignment(db, previous, "transferred", now)
            notices.append(
                session_update(
                    previous.volunteer_id, session_id, "transferred", to=str(principal.id)
                )
            )
    else:
        session = await move(
            db, session_id, "offered", "active", reason="accepted", now=now, actor=principal
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
    audit(db, principal, "session_accepted", session_id, kind=pending.kind)
    notices.append(
        Notice(
            channel=volunteer_channel(principal.id),
            frame=assigned_frame(session, pending.kind, now),
        )
    )
    notices.append(visitor_notice(session_id, "active"))
    return session, notices


async def decline(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, *, now: datetime | None = None
) -> list[Notice]:
    now = now or utcnow()
    pending = await open_offer(db, session_id, principal.id)
    if pending is None:
        raise NoOffer("no pending offer of this session to you")
    return await end_offer(db, pending, "declined", now, principal)


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
        notices.extend(await end_offer(db, pending, "expired", now, None))
    return notices


async def _claim_waiting(
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    now: datetime,
    high_urgency_slots: int,
) -> ChatSession | None:
    session = await move(
        db, session_id, "waiting", "active", reason="claimed", now=now, actor=principal
    )
    if session is None:
        return None
    slots = await take_slot(
        db,
        principal.id,
        urgency=session.urgency,
        high_urgency_slots=high_urgency_slots,
        online_only=False,
    )
    if not slots:
        await move(db, session_id, "active", "waiting", reason="at_capacity", now=now)
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
    audit(db, principal, "session_claimed", session_id, urgency=session.urgency)
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
    pending = await open_offer(db, session_id, principal.id)
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
        visitor_notice(session.id, "active"),
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


# The rest of what this module used to hold, where callers have always found it.
from app.routing.access import read_transcript, require_access  # noqa: E402
from app.routing.claims import DISPOSITIONS, ENDED_STATUSES, LIVE_STATUSES  # noqa: E402
from app.routing.errors import NotAssigned  # noqa: E402
from app.routing.handover import (  # noqa: E402
    close,
    end_orphans,
    release,
    release_by,
    requeue_volunteer,
    transfer,
)
from app.routing.notices import ROUTING_CHANNEL, ROUTING_WAKE, SUPERVISORS_CHANNEL  # noqa: E402
from app.routing.slots import UnderWeight, slot_weight, top_up, under_weight  # noqa: E402

__all__ = [
    "DISPOSITIONS",
    "ENDED_STATUSES",
    "LIVE_STATUSES",
    "ROUTING_CHANNEL",
    "ROUTING_WAKE",
    "SUPERVISORS_CHANNEL",
    "AtCapacity",
    "NoOffer",
    "NotAssigned",
    "Notice",
    "OfferMade",
    "QueueEmpty",
    "SessionTaken",
    "UnderWeight",
    "accept",
    "assigned_frame",
    "claim",
    "close",
    "decline",
    "end_orphans",
    "expire_offers",
    "next_session",
    "offer",
    "read_transcript",
    "release",
    "release_by",
    "requeue_volunteer",
    "require_access",
    "slot_weight",
    "top_up",
    "transfer",
    "under_weight",
    "volunteer_channel",
]
