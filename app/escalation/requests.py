"""Handoff asked for by a person (a volunteer holding the chat, or a supervisor), and the
two-step active rescue (a supervisor requests, a supervisor confirms)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bus import Bus
from app.chat.models import ChatSession
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import NotFound
from app.escalation.alerts import alert_supervisors, audit
from app.escalation.clock import start_delivery
from app.escalation.errors import InvalidTransition, RescueNotFound, SessionNotLive, SupervisorsOnly
from app.escalation.models import Handoff, RescueRequest
from app.escalation.repository import LIVE, lock_session, open_handoff, write_first
from app.routing.access import require_access
from app.routing.accounts import Principal


async def request_handoff(
    db: AsyncSession,
    bus: Bus,
    settings: Settings,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    active_rescue: bool = False,
    now: datetime | None = None,
) -> Handoff:
    """A volunteer holding the session, or any supervisor, hands it off now (no clock)."""
    now = now or utcnow()
    await require_access(db, principal, session_id, write=not principal.is_supervisor)
    session = await lock_session(db, session_id)
    if session is None:
        raise NotFound("no such session")
    if session.status not in LIVE:
        raise SessionNotLive(f"the session is {session.status}")
    actor = {"actor_type": principal.role, "actor_id": principal.actor_id}
    trigger = (
        "active_rescue"
        if active_rescue
        else "supervisor_request"
        if principal.is_supervisor
        else "volunteer_request"
    )
    handoff = await open_handoff(db, session_id)
    if handoff is not None and handoff.status != "scheduled":
        if active_rescue and not handoff.active_rescue:
            handoff.active_rescue = True
            audit(db, "handoff_marked_rescue", session_id, handoff_id=str(handoff.id), **actor)
        return handoff  # already on its way: asking twice changes nothing
    if handoff is None:
        handoff = Handoff(
            id=uuid.uuid4(),
            session_id=session_id,
            level=session.urgency,
            status="scheduled",
            due_at=now,
            attempts=0,
            # The safety message belongs to automatic escalation; a person is already there.
            safety_sent_at=now,
            created_at=now,
            updated_at=now,
        )
        db.add(handoff)
    handoff.trigger = trigger
    handoff.requested_by = principal.actor_id
    handoff.active_rescue = handoff.active_rescue or active_rescue
    handoff.due_at = now
    await db.flush()
    audit(db, "handoff_requested", session_id, handoff_id=str(handoff.id), trigger=trigger, **actor)
    await start_delivery(db, bus, handoff, session, settings, now)
    return handoff


def _require_supervisor(principal: Principal) -> None:
    if not principal.is_supervisor:
        raise SupervisorsOnly("active rescue is for supervisors only")


async def request_rescue(
    db: AsyncSession, bus: Bus, principal: Principal, session_id: uuid.UUID
) -> RescueRequest:
    """Step one of two: recorded and announced to supervisors, nothing sent yet."""
    _require_supervisor(principal)
    now = utcnow()
    session = await lock_session(db, session_id)
    if session is None:
        raise NotFound("no such session")
    if session.status not in (*LIVE, "handed_off"):
        raise SessionNotLive(f"the session is {session.status}")
    rescue = RescueRequest(
        id=uuid.uuid4(),
        session_id=session_id,
        status="requested",
        requested_by=principal.actor_id,
        requested_at=now,
    )
    db.add(rescue)
    await db.flush()
    audit(
        db,
        "active_rescue_requested",
        session_id,
        actor_type=principal.role,
        actor_id=principal.actor_id,
        rescue_id=str(rescue.id),
    )
    await alert_supervisors(
        db,
        bus,
        session_id,
        session.urgency,
        "active_rescue_requested",
        rescue_id=str(rescue.id),
        requested_by=principal.actor_id,
    )
    return rescue


async def decide_rescue(
    db: AsyncSession,
    bus: Bus,
    settings: Settings,
    principal: Principal,
    rescue_id: uuid.UUID,
    *,
    confirm: bool,
) -> RescueRequest:
    """Step two: a supervisor confirms (the session is handed off now, flagged for active
    rescue) or cancels. Only a pending request can be decided, exactly once."""
    _require_supervisor(principal)
    now = utcnow()
    await write_first(db)
    rescue = (
        await db.execute(
            select(RescueRequest)
            .where(RescueRequest.id == rescue_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if rescue is None:
        raise RescueNotFound("no such rescue request")
    if rescue.status != "requested":
        raise InvalidTransition(f"the rescue request is already {rescue.status}")
    rescue.status = "confirmed" if confirm else "cancelled"
    rescue.decided_by = principal.actor_id
    rescue.decided_at = now
    action = "active_rescue_confirmed" if confirm else "active_rescue_cancelled"
    audit(
        db,
        action,
        rescue.session_id,
        actor_type=principal.role,
        actor_id=principal.actor_id,
        rescue_id=str(rescue.id),
        requested_by=rescue.requested_by,
    )
    urgency = await db.scalar(
        select(ChatSession.urgency).where(ChatSession.id == rescue.session_id)
    )
    if confirm:
        handoff = await request_handoff(
            db, bus, settings, principal, rescue.session_id, active_rescue=True, now=now
        )
        rescue.handoff_id = handoff.id
    await alert_supervisors(
        db,
        bus,
        rescue.session_id,
        urgency or 0,
        action,
        rescue_id=str(rescue.id),
        decided_by=principal.actor_id,
    )
    return rescue
