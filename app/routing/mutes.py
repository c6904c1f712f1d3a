"""A supervisor mutes an abusive visitor for a while (issue 14); the rules of what a mute does
are pure, in app/domain/mute.py (the volunteer is shielded; the visitor loses nothing).

One step for a calmer session: the mute is ``active`` at once. A session at ``high`` or above
is never muted on one person's say: the request is recorded (``requested``) and announced to
supervisors, and only a *different* supervisor's confirmation makes it ``active`` (the two-step
pattern of active rescue, app/escalation/requests.py, with the second person enforced). Every
step is an audit event with the supervisor's id and the mute's id; the reason is stored on the
mute row, never in logs.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bus import Bus, session_channel
from app.bus.events import MuteChanged, SupervisorAlert, encode
from app.core.db import take_write_lock, utcnow
from app.core.errors import Conflict, Forbidden, NotFound
from app.domain.mute import ActiveMute, needs_second_supervisor
from app.routing import frames
from app.routing.accounts import Principal
from app.routing.claims import audit
from app.routing.models import SessionMute
from app.routing.notices import SUPERVISORS_CHANNEL
from app.routing.supervision import live_session, require_supervisor
from app.triage.types import Level


class MuteNotFound(NotFound):
    code = "mute_not_found"


class AlreadyMuted(Conflict):
    code = "already_muted"


class InvalidMuteTransition(Conflict):
    code = "invalid_transition"


class SecondSupervisorRequired(Forbidden):
    """A high+ session's mute must be confirmed by someone other than who asked for it."""

    code = "second_supervisor_required"


async def active_mute(
    db: AsyncSession, session_id: uuid.UUID, now: datetime | None = None
) -> ActiveMute | None:
    now = now or utcnow()
    row = await db.scalar(
        select(SessionMute)
        .where(
            SessionMute.session_id == session_id,
            SessionMute.status == "active",
            SessionMute.until > now,
        )
        .order_by(SessionMute.until.desc())
        .limit(1)
    )
    if row is None or row.until is None:
        return None
    return ActiveMute(until=row.until, confirmed=row.confirmed_by is not None)


async def _pending_or_active(db: AsyncSession, session_id: uuid.UUID) -> SessionMute | None:
    now = utcnow()
    rows = (
        await db.scalars(
            select(SessionMute).where(
                SessionMute.session_id == session_id,
                SessionMute.status.in_(("requested", "active")),
            )
        )
    ).all()
    for row in rows:
        if row.status == "requested" or (row.until is not None and row.until > now):
            return row
    return None


async def _announce(db: AsyncSession, bus: Bus, mute: SessionMute) -> None:
    """Holders and observers hear the change on the session's channel (the visitor's socket
    ignores the kind)."""
    until = mute.until.isoformat() if mute.status == "active" and mute.until else None
    event = MuteChanged(str(mute.session_id), str(mute.id), until)
    await bus.publish_many([(session_channel(mute.session_id), encode(event))], db=db)


async def _alert(
    db: AsyncSession, bus: Bus, mute: SessionMute, urgency: int, reason: str, **extra: Any
) -> None:
    alert = SupervisorAlert(
        "supervision",
        str(mute.session_id),
        Level(urgency).name,
        urgency,
        reason,
        {"mute_id": str(mute.id), **extra},
    )
    await bus.publish_many([(SUPERVISORS_CHANNEL, encode(alert))], db=db)


async def request_mute(
    db: AsyncSession,
    bus: Bus,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    duration_s: int,
    reason: str,
) -> SessionMute:
    require_supervisor(principal)
    await take_write_lock(db, SessionMute)
    # Locked: of two supervisors muting at once, the second waits and then finds the first's.
    session = await live_session(db, session_id, lock=True)
    if await _pending_or_active(db, session_id) is not None:
        raise AlreadyMuted("this session is already muted, or a mute awaits confirmation")
    now = utcnow()
    two_step = needs_second_supervisor(session.urgency)
    mute = SessionMute(
        id=uuid.uuid4(),
        session_id=session_id,
        status="requested" if two_step else "active",
        reason=reason,
        duration_s=duration_s,
        urgency_at_request=session.urgency,
        requested_by=principal.actor_id,
        requested_at=now,
        decided_at=None if two_step else now,
        until=None if two_step else now + timedelta(seconds=duration_s),
    )
    db.add(mute)
    await db.flush()
    details = {"mute_id": str(mute.id), "duration_s": duration_s, "urgency": session.urgency}
    if two_step:
        audit(db, principal, "mute_requested", session_id, **details)
        await _alert(
            db, bus, mute, session.urgency, "mute_requested", requested_by=principal.actor_id
        )
    else:
        audit(db, principal, "session_muted", session_id, **details)
        await _announce(db, bus, mute)
    return mute


async def _locked(db: AsyncSession, mute_id: uuid.UUID) -> SessionMute:
    await take_write_lock(db, SessionMute)
    mute = (
        await db.execute(
            select(SessionMute)
            .where(SessionMute.id == mute_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if mute is None:
        raise MuteNotFound("no such mute")
    return mute


async def decide_mute(
    db: AsyncSession, bus: Bus, principal: Principal, mute_id: uuid.UUID, *, confirm: bool
) -> SessionMute:
    """Step two: a second supervisor confirms (the mute starts now, for its duration) or any
    supervisor cancels. Decided exactly once."""
    require_supervisor(principal)
    mute = await _locked(db, mute_id)
    if mute.status != "requested":
        raise InvalidMuteTransition(f"the mute is already {mute.status}")
    if confirm and mute.requested_by == principal.actor_id:
        raise SecondSupervisorRequired("a second supervisor must confirm this mute")
    now = utcnow()
    mute.decided_at = now
    details = {"mute_id": str(mute.id), "requested_by": mute.requested_by}
    if confirm:
        session = await live_session(db, mute.session_id)
        mute.status = "active"
        mute.confirmed_by = principal.actor_id
        mute.until = now + timedelta(seconds=mute.duration_s)
        audit(db, principal, "mute_confirmed", mute.session_id, **details)
        await _announce(db, bus, mute)
        await _alert(
            db, bus, mute, session.urgency, "mute_confirmed", decided_by=principal.actor_id
        )
    else:
        mute.status = "cancelled"
        audit(db, principal, "mute_cancelled", mute.session_id, **details)
    return mute


async def lift_mute(
    db: AsyncSession, bus: Bus, principal: Principal, session_id: uuid.UUID
) -> SessionMute:
    require_supervisor(principal)
    await take_write_lock(db, SessionMute)
    mute = await _pending_or_active(db, session_id)
    if mute is None or mute.status != "active":
        raise MuteNotFound("this session is not muted")
    mute.status = "lifted"
    mute.lifted_by = principal.actor_id
    mute.lifted_at = utcnow()
    audit(db, principal, "mute_lifted", session_id, mute_id=str(mute.id))
    await _announce(db, bus, mute)
    return mute


async def from_frame(
    db: AsyncSession,
    bus: Bus,
    principal: Principal,
    frame: frames.MuteFrame | frames.ConfirmMuteFrame | frames.CancelMuteFrame | frames.UnmuteFrame,
) -> frames.MuteOut:
    """The volunteer socket's mute frames, run in the frame's transaction."""
    if isinstance(frame, frames.MuteFrame):
        mute = await request_mute(
            db, bus, principal, frame.session_id, duration_s=frame.duration_s, reason=frame.reason
        )
    elif isinstance(frame, frames.UnmuteFrame):
        mute = await lift_mute(db, bus, principal, frame.session_id)
    else:
        confirm = isinstance(frame, frames.ConfirmMuteFrame)
        mute = await decide_mute(db, bus, principal, frame.mute_id, confirm=confirm)
    return frames.MuteOut(
        mute_id=str(mute.id),
        session_id=str(mute.session_id),
        status=mute.status,
        needs_confirmation=mute.status == "requested",
        requested_by=mute.requested_by,
        until=mute.until.isoformat() if mute.until else None,
        confirmed_by=mute.confirmed_by,
    )
