"""What a volunteer asks for, whether over REST (``routers/dashboard``) or their socket (the
volunteer protocol): one function per command, one :func:`execute` for all of them.

Each runs in the caller's transaction (the boundary commits), publishes what changed on the bus
inside it (heard only if it commits) and returns :class:`Done`: the session and the status it
is in now, which is what both edges answer with. Refusals raise ``BeaconError`` subclasses
with stable codes (``session_taken``, ``queue_empty``, ``no_offer``, ``at_capacity``...).

    done = await commands.execute(db, Context(bus, settings, metrics), principal, Next())
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.bus import Bus
from app.chat.models import ChatSession
from app.core.config import Settings
from app.core.db import utcnow
from app.core.metrics import Metrics
from app.routing import assignments, dispatch, notify
from app.routing.accounts import Principal


@dataclass(frozen=True, slots=True)
class Context:
    """What commands need from the lifespan (both edges hold these)."""

    bus: Bus
    settings: Settings
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class Done:
    session_id: uuid.UUID
    status: str


@dataclass(frozen=True, slots=True)
class Next:
    """The most urgent waiting session this volunteer is eligible for."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A named waiting session (or the one offered to this volunteer)."""

    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Accept:
    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Decline:
    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Release:
    """Back to the queue, keeping its urgency and original wait."""

    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Transfer:
    """Warm to a named volunteer or any free supervisor; with neither, cold to the queue."""

    session_id: uuid.UUID
    to_volunteer_id: uuid.UUID | None = None
    to_supervisor: bool = False


@dataclass(frozen=True, slots=True)
class Close:
    """Wrap-up: the disposition and the volunteer's risk assessment (the new urgency)."""

    session_id: uuid.UUID
    disposition: str
    risk_level: int
    notes: str | None = None


Command = Next | Claim | Accept | Decline | Release | Transfer | Close


async def execute(db: AsyncSession, ctx: Context, me: Principal, command: Command) -> Done:
    match command:
        case Next():
            return await next_session(db, ctx, me)
        case Claim(session_id):
            return await claim(db, ctx, me, session_id)
        case Accept(session_id):
            return await accept(db, ctx, me, session_id)
        case Decline(session_id):
            return await decline(db, ctx, me, session_id)
        case Release(session_id):
            return await release(db, ctx, me, session_id)
        case Transfer():
            return await transfer(db, ctx, me, command)
        case Close():
            return await close(db, ctx, me, command)


async def _answered(
    db: AsyncSession, ctx: Context, session: ChatSession, notices: list[assignments.Notice]
) -> Done:
    await notify.publish(ctx.bus, notices, db=db)
    notify.observe_answered(ctx.metrics, session)
    return Done(session.id, session.status)


async def next_session(db: AsyncSession, ctx: Context, me: Principal) -> Done:
    now = utcnow()
    queue = await dispatch.waiting_sessions(db, ctx.settings)
    candidates = [s.id for s in queue if dispatch.eligible(s, me.languages, now, ctx.settings)]
    session, notices = await assignments.next_session(
        db, me, candidates, high_urgency_slots=ctx.settings.high_urgency_slots, now=now
    )
    return await _answered(db, ctx, session, notices)


async def claim(db: AsyncSession, ctx: Context, me: Principal, session_id: uuid.UUID) -> Done:
    session, notices = await assignments.claim(
        db, me, session_id, high_urgency_slots=ctx.settings.high_urgency_slots
    )
    return await _answered(db, ctx, session, notices)


async def accept(db: AsyncSession, ctx: Context, me: Principal, session_id: uuid.UUID) -> Done:
    session, notices = await assignments.accept(db, me, session_id)
    return await _answered(db, ctx, session, notices)


async def decline(db: AsyncSession, ctx: Context, me: Principal, session_id: uuid.UUID) -> Done:
    notices = await assignments.decline(db, me, session_id)
    await notify.publish(ctx.bus, notices, db=db)
    return Done(session_id, "declined")


async def release(db: AsyncSession, ctx: Context, me: Principal, session_id: uuid.UUID) -> Done:
    notices = await assignments.release_by(db, me, session_id)
    await notify.publish(ctx.bus, notices, db=db)
    return Done(session_id, "waiting")


async def transfer(db: AsyncSession, ctx: Context, me: Principal, command: Transfer) -> Done:
    made, notices = await assignments.transfer(
        db,
        me,
        command.session_id,
        to_volunteer_id=command.to_volunteer_id,
        to_supervisor=command.to_supervisor,
        timeout_s=ctx.settings.offer_timeout_s,
        high_urgency_slots=ctx.settings.high_urgency_slots,
    )
    await notify.publish(ctx.bus, notices, db=db)
    return Done(command.session_id, "transferring" if made else "waiting")


async def close(db: AsyncSession, ctx: Context, me: Principal, command: Close) -> Done:
    notices = await assignments.close(
        db,
        me,
        command.session_id,
        disposition=command.disposition,
        risk_level=command.risk_level,
        notes=command.notes,
    )
    await notify.publish(ctx.bus, notices, db=db)
    return Done(command.session_id, "closed")
