"""Automatic escalation: the handoff clock starts (or tightens) for an unanswered urgent
session, a held chat that turned imminent alerts its volunteer, and when a clock runs out the
handoff is delivered (nobody answered) or stands down (a volunteer did).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bus import Bus
from app.chat import cards
from app.chat.models import ChatSession, Message
from app.core.config import Settings
from app.core.db import skip_locked, utcnow
from app.domain.handoff import HANDOFF, HandoffStatus
from app.escalation.alerts import SUPERVISOR_ROLES, alert, alert_supervisors, audit, seconds_until
from app.escalation.lifecycle import advance
from app.escalation.models import Handoff
from app.escalation.partners import PartnersConfig, select_partners
from app.escalation.policy import Policy
from app.escalation.repository import (
    HELD,
    escalated_before,
    is_unanswered,
    lock_session,
    open_handoff,
    write_first,
)
from app.routing.frames import AlertOut
from app.routing.models import Assignment, Volunteer
from app.routing.notices import payload, volunteer_channel
from app.triage.types import Level


async def escalate(
    db: AsyncSession,
    bus: Bus,
    *,
    session_id: uuid.UUID,
    policy: Policy,
    partners: PartnersConfig | None,
    now: datetime | None = None,
) -> Handoff | None:
    """Start (or tighten) the handoff clock of an unanswered urgent session. Returns the new
    handoff, or None when there was nothing to start (raced, answered, already escalated)."""
    now = now or utcnow()
    session = await lock_session(db, session_id)
    if session is None or not await is_unanswered(db, session):
        return None
    deadline = policy.deadline_s(session.urgency)
    if deadline is None:
        return None
    due_at = now + timedelta(seconds=deadline)
    current = await open_handoff(db, session_id)
    if current is not None:
        await _tighten(db, bus, current, session, due_at, now)
        return None
    if await db.scalar(select(Handoff.id).where(escalated_before(session_id)).limit(1)):
        return None  # escalated once already: one safety message per session escalation
    candidates = select_partners(partners, session.locale, session.urgency)
    handoff = Handoff(
        id=uuid.uuid4(),
        session_id=session_id,
        level=session.urgency,
        trigger="auto",
        status=HANDOFF.initial.value,
        partner=candidates[0].name if candidates else None,
        due_at=due_at,
        attempts=0,
        active_rescue=False,
        created_at=now,
        updated_at=now,
    )
    db.add(handoff)
    await db.flush()
    audit(
        db,
        "escalation_started",
        session_id,
        handoff_id=str(handoff.id),
        level=session.urgency,
        due_at=due_at.isoformat(),
        partner=handoff.partner,
    )
    await alert_supervisors(
        db,
        bus,
        session_id,
        session.urgency,
        "escalation_started",
        handoff_id=str(handoff.id),
        due_in_s=deadline,
        signals=list(session.signals or []),
    )
    return handoff


async def _tighten(
    db: AsyncSession,
    bus: Bus,
    current: Handoff,
    session: ChatSession,
    due_at: datetime,
    now: datetime,
) -> None:
    """Urgency rose above a scheduled clock's level: the clock of the higher level is shorter,
    and it only ever moves closer."""
    if current.status != HandoffStatus.scheduled or session.urgency <= current.level:
        return
    current.level = session.urgency
    current.due_at = min(current.due_at, due_at)
    audit(
        db,
        "escalation_raised",
        session.id,
        handoff_id=str(current.id),
        level=session.urgency,
        due_at=current.due_at.isoformat(),
    )
    await alert_supervisors(
        db,
        bus,
        session.id,
        session.urgency,
        "escalation_raised",
        handoff_id=str(current.id),
        due_in_s=seconds_until(current.due_at, now),
    )


async def alert_in_chat(
    db: AsyncSession, bus: Bus, *, session_id: uuid.UUID, now: datetime | None = None
) -> Handoff | None:
    """A held chat turned imminent: the volunteer holding it and every supervisor are alerted
    at once, and the visitor is owed the short in-chat safety message (the route to immediate
    help). No clock and no partner: a trained person is already in the conversation, and
    handing off stays their call. The ``not_needed`` row records that this was done, once.
    Mid warm transfer the holder is the one who offered it on (the other has not accepted);
    a transfer nobody holds any more is unanswered and left to ``escalate``."""
    now = now or utcnow()
    session = await lock_session(db, session_id)
    if session is None or session.status not in HELD or session.urgency < Level.imminent:
        return None
    if await db.scalar(
        select(Handoff.id)
        .where(Handoff.session_id == session_id, Handoff.level >= int(Level.imminent))
        .limit(1)
    ):
        return None
    holders = (
        await db.execute(
            select(Assignment.volunteer_id, Volunteer.role)
            .join(Volunteer, Volunteer.id == Assignment.volunteer_id)
            .where(Assignment.session_id == session_id, Assignment.status == "active")
        )
    ).all()
    if session.status == "transferring" and not holders:
        return None
    record = Handoff(
        id=uuid.uuid4(),
        session_id=session_id,
        level=session.urgency,
        trigger="in_chat",
        status="not_needed",
        due_at=now,
        attempts=0,
        active_rescue=False,
        created_at=now,
        updated_at=now,
    )
    db.add(record)
    await db.flush()
    audit(
        db,
        "escalation_in_chat",
        session_id,
        handoff_id=str(record.id),
        level=session.urgency,
        volunteer_ids=[str(h.volunteer_id) for h in holders],
    )
    extra: dict[str, Any] = {
        "handoff_id": str(record.id),
        "signals": list(session.signals or []),
    }
    supervisors = alert(
        session_id,
        session.urgency,
        "imminent_in_chat",
        volunteer_ids=[str(h.volunteer_id) for h in holders],
        **extra,
    )
    _, for_holder = alert(session_id, session.urgency, "imminent_in_chat", **extra)
    # A holder who is a supervisor hears the supervisors' alert (which names them): once.
    await bus.publish_many(
        [
            supervisors,
            *(
                (volunteer_channel(h.volunteer_id), payload(AlertOut(**for_holder)))
                for h in holders
                if h.role not in SUPERVISOR_ROLES
            ),
        ],
        db=db,
    )
    return record


TRANSCRIPT_LIMIT = 500  # the most recent messages a consented transcript carries


def build_payload(
    handoff: Handoff,
    session: ChatSession,
    settings: Settings,
    now: datetime,
    transcript: list[Message] | None = None,
) -> dict[str, Any]:
    """Only what the partner needs (SPEC §5), plus what the visitor consented to in the chat
    (app/chat/consent.py): ``transcript`` and ``contact`` are present only then, absent (never
    empty, never null) otherwise; ``consent`` says which. Location is never collected."""
    shares_transcript = bool(session.consent_transcript)
    shares_contact = bool(session.consent_contact) and bool(session.contact_phone)
    payload: dict[str, Any] = {
        "version": 1,
        "handoff_id": str(handoff.id),
        "session_id": str(session.id),
        "urgency": Level(session.urgency).name,
        "urgency_value": session.urgency,
        "signals": list(session.signals or []),
        "locale": session.locale,
        "reason": {
            "auto": "no_volunteer_in_time",
            "volunteer_request": "volunteer_request",
            "supervisor_request": "supervisor_request",
            "active_rescue": "active_rescue",
        }.get(handoff.trigger, handoff.trigger),
        "active_rescue": handoff.active_rescue,
        "requested_at": now.isoformat(),
        "consent": {"transcript": shares_transcript, "contact": shares_contact, "location": False},
    }
    if shares_transcript:
        payload["transcript"] = [
            {
                "seq": m.seq,
                "sender": m.sender,
                "text": cards.wire_text(m.kind, m.text)[0],
                "sent_at": m.sent_at.isoformat(),
            }
            for m in transcript or []
            if m.text is not None
        ]
    if shares_contact:
        payload["contact"] = {"phone": session.contact_phone}
    if settings.public_base_url:
        base = settings.public_base_url.rstrip("/")
        payload["callback_url"] = f"{base}/v1/handoffs/{handoff.id}/status"
    return payload


async def consented_transcript(db: AsyncSession, session: ChatSession) -> list[Message] | None:
    """The visitor's chat as they saw it (``messages`` only: staff whispers live elsewhere and
    are never shared), most recent ``TRANSCRIPT_LIMIT``, in order; None without consent."""
    if not session.consent_transcript:
        return None
    rows = (
        await db.scalars(
            select(Message)
            .where(Message.session_id == session.id, Message.text.is_not(None))
            .order_by(Message.seq.desc())
            .limit(TRANSCRIPT_LIMIT)
        )
    ).all()
    return list(reversed(rows))


def payload_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def start_delivery(
    db: AsyncSession,
    bus: Bus,
    handoff: Handoff,
    session: ChatSession,
    settings: Settings,
    now: datetime,
) -> None:
    advance(handoff, HandoffStatus.delivering, now)
    handoff.level = max(handoff.level, session.urgency)
    transcript = await consented_transcript(db, session)
    handoff.payload = build_payload(handoff, session, settings, now, transcript)
    handoff.next_attempt_at = now
    handoff.delivery_deadline_at = now + timedelta(seconds=settings.handoff_delivery_deadline_s)
    handoff.updated_at = now
    audit(
        db,
        "handoff_started",
        session.id,
        handoff_id=str(handoff.id),
        trigger=handoff.trigger,
        level=session.urgency,
        payload_keys=sorted(handoff.payload),
    )
    await alert_supervisors(
        db,
        bus,
        session.id,
        session.urgency,
        "handoff_started",
        handoff_id=str(handoff.id),
        trigger=handoff.trigger,
    )


async def due_handoffs(
    db: AsyncSession, bus: Bus, settings: Settings, *, now: datetime | None = None, limit: int = 50
) -> list[uuid.UUID]:
    """Clocks that ran out: start delivery (nobody answered) or stand down (a volunteer did).
    Rows are claimed with FOR UPDATE SKIP LOCKED, so instances never take the same one."""
    now = now or utcnow()
    await write_first(db)
    rows = (
        await db.scalars(
            select(Handoff)
            .where(Handoff.status == "scheduled", Handoff.due_at <= now)
            .order_by(Handoff.due_at)
            .limit(limit)
            .with_for_update(**skip_locked(db))
            .execution_options(populate_existing=True)
        )
    ).all()
    started: list[uuid.UUID] = []
    for handoff in rows:
        session = await db.get(ChatSession, handoff.session_id)
        if session is None or not await is_unanswered(db, session):
            # Answered meanwhile (accepted, or accepted and now mid warm transfer): the clock
            # must not hand the visitor to a partner while a volunteer is in the chat.
            advance(handoff, HandoffStatus.cancelled, now)
            audit(
                db,
                "handoff_cancelled",
                handoff.session_id,
                handoff_id=str(handoff.id),
                reason="answered"
                if session is not None and session.status in HELD
                else "session_ended",
                session_status=None if session is None else session.status,
            )
            continue
        await start_delivery(db, bus, handoff, session, settings, now)
        started.append(handoff.id)
    return started
