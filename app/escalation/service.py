"""Escalation state changes, each in the caller's transaction (services never commit).

The ``handoffs`` row is the whole state machine::

    scheduled --deadline, nobody accepted--> delivering --2xx--> delivered
        |                                       |                  |
        |--a volunteer took it--> cancelled     |--deadline--> undeliverable
                                                                   |
    delivered/delivering --partner: accepted--> accepted --connected--> connected
    any of those --partner: failed--> failed

    not_needed: a chat a volunteer already held turned imminent (alerts + in-chat safety
    message, no clock); kept only as the record that this happened, once.

Every change is an audit event; whatever supervisors must see is published on the supervisors
channel inside the same transaction (heard only if it commits). What the visitor must be told
is recorded as ``notice_due`` / ``safety_sent_at`` and sent by the clock loop through the chat
committer with a deterministic ``client_msg_id``, so it is sent once even across a crash.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record_event
from app.bus import Bus, Event
from app.chat.models import ChatSession
from app.chat.service import SessionStatus, change_status
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, Forbidden, NotFound
from app.escalation.models import OPEN_HANDOFF_STATUSES, Handoff, HandoffAttempt, RescueRequest
from app.escalation.partners import Partner, PartnersConfig, select_partners
from app.escalation.templates import MessageKind
from app.routing.accounts import Principal
from app.routing.assignments import SUPERVISORS_CHANNEL, require_access, volunteer_channel
from app.routing.models import Assignment, Volunteer
from app.triage.types import Level

# Sessions software escalates on its own: nobody is talking with them yet. A warm transfer
# (``transferring``) counts only once nobody holds it any more: until the other volunteer
# accepts, the current one is still in the chat (see ``_unanswered``).
UNANSWERED = ("waiting", "offered", "transferring")
# Sessions a volunteer may be in the chat of: the in-chat path, not a clock.
HELD = ("active", "transferring")
# Sessions a person may still be handed off from.
LIVE = ("waiting", "offered", "active", "transferring")
# Rows that stood down because a volunteer was (or got) there: if the session is unanswered
# again later (released, requeued), it needs a clock of its own.
STOOD_DOWN = ("cancelled", "not_needed")
# Automatic escalation's two opening messages: the usual one, and the one for a chat a
# volunteer already holds.
SAFETY_KINDS = frozenset({MessageKind.safety, MessageKind.safety_in_chat})
_NO_SYNC: dict[str, Any] = {"synchronize_session": False}
# Roles whose sockets hear the supervisors channel (``Principal.is_supervisor``).
_SUPERVISOR_ROLES = ("supervisor", "admin")


class HandoffNotFound(NotFound):
    code = "handoff_not_found"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class SessionNotLive(Conflict):
    code = "session_not_live"


class RescueNotFound(NotFound):
    code = "rescue_not_found"


class SupervisorsOnly(Forbidden):
    code = "supervisors_only"


@dataclass(frozen=True, slots=True)
class Policy:
    """What each urgency level obliges (SPEC §5), from settings."""

    imminent_deadline_s: float
    high_deadline_s: float | None
    delivery_deadline_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            imminent_deadline_s=settings.handoff_deadline_s,
            high_deadline_s=settings.handoff_deadline_high_s if settings.escalate_high else None,
            delivery_deadline_s=settings.handoff_delivery_deadline_s,
        )

    @property
    def min_level(self) -> int:
        return int(Level.high) if self.high_deadline_s is not None else int(Level.imminent)

    def deadline_s(self, level: int) -> float | None:
        if level >= Level.imminent:
            return self.imminent_deadline_s
        if level >= Level.high:
            return self.high_deadline_s
        return None


# ---------------------------------------------------------------------------------------------
# Alerts for supervisors (the routing side turns these into `alert` frames on their sockets).


def alert(session_id: uuid.UUID, urgency: int, reason: str, **extra: Any) -> Event:
    return (
        SUPERVISORS_CHANNEL,
        {
            "kind": "escalation",
            "session_id": str(session_id),
            "urgency": Level(urgency).name,
            "urgency_value": urgency,
            "reason": reason,
            **extra,
        },
    )


async def _alert_supervisors(
    db: AsyncSession, bus: Bus, session_id: uuid.UUID, urgency: int, reason: str, **extra: Any
) -> None:
    """One supervisor alert, published with the caller's transaction (never ahead of it)."""
    await bus.publish_many([alert(session_id, urgency, reason, **extra)], db=db)


def _audit(
    db: AsyncSession,
    action: str,
    session_id: uuid.UUID,
    *,
    actor_type: str = "system",
    actor_id: str | None = None,
    **details: Any,
) -> None:
    record_event(
        db,
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        subject_type="session",
        subject_id=str(session_id),
        details=details,
    )


async def _write_first(db: AsyncSession) -> None:
    """SQLite only: take the database write lock before reading (a read-then-write transaction
    would otherwise fail with "database is locked" instead of waiting)."""
    if db.get_bind().dialect.name == "sqlite":
        await db.execute(
            update(Handoff)
            .where(Handoff.id == uuid.UUID(int=0))
            .values(attempts=Handoff.attempts)
            .execution_options(**_NO_SYNC)
        )


def _skip_locked(db: AsyncSession) -> dict[str, Any]:
    return {"skip_locked": True} if db.get_bind().dialect.name == "postgresql" else {}


async def _lock_session(db: AsyncSession, session_id: uuid.UUID) -> ChatSession | None:
    query = select(ChatSession).where(ChatSession.id == session_id)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    else:
        await _write_first(db)
    return (await db.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()


async def _open_handoff(db: AsyncSession, session_id: uuid.UUID) -> Handoff | None:
    return await db.scalar(
        select(Handoff)
        .where(Handoff.session_id == session_id, Handoff.status.in_(OPEN_HANDOFF_STATUSES))
        .execution_options(populate_existing=True)
    )


def _holds(session_id: Any) -> Any:
    """A volunteer is in the chat: an active assignment (during a warm transfer, the one who
    offered it on, until the other accepts)."""
    return exists().where(Assignment.session_id == session_id, Assignment.status == "active")


def _unanswered() -> Any:
    return ChatSession.status.in_(UNANSWERED) & ~(
        (ChatSession.status == "transferring") & _holds(ChatSession.id)
    )


async def _is_unanswered(db: AsyncSession, session: ChatSession) -> bool:
    if session.status == "transferring":
        return not await db.scalar(select(_holds(session.id)))
    return session.status in UNANSWERED


# ---------------------------------------------------------------------------------------------
# Automatic escalation: the clock starts.


async def sessions_to_escalate(db: AsyncSession, policy: Policy, *, limit: int = 100) -> list[Any]:
    """Unanswered sessions at or above the escalation level that have never escalated (or only
    while a volunteer was there), or whose urgency rose above their open (still scheduled)
    handoff's level."""
    never = (
        select(ChatSession.id, ChatSession.urgency)
        .where(
            _unanswered(),
            ChatSession.urgency >= policy.min_level,
            ~exists().where(_escalated_before(ChatSession.id)),
        )
        .limit(limit)
    )
    rose = (
        select(ChatSession.id, ChatSession.urgency)
        .join(Handoff, Handoff.session_id == ChatSession.id)
        .where(Handoff.status == "scheduled", ChatSession.urgency > Handoff.level)
        .limit(limit)
    )
    return [*(await db.execute(never)).all(), *(await db.execute(rose)).all()]


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
    session = await _lock_session(db, session_id)
    if session is None or not await _is_unanswered(db, session):
        return None
    deadline = policy.deadline_s(session.urgency)
    if deadline is None:
        return None
    due_at = now + timedelta(seconds=deadline)
    current = await _open_handoff(db, session_id)
    if current is not None:
        if current.status == "scheduled" and session.urgency > current.level:
            # The clock of the higher level is shorter: it only ever moves closer.
            current.level = session.urgency
            current.due_at = min(current.due_at, due_at)
            _audit(
                db,
                "escalation_raised",
                session_id,
                handoff_id=str(current.id),
                level=session.urgency,
                due_at=current.due_at.isoformat(),
            )
            await _alert_supervisors(
                db,
                bus,
                session_id,
                session.urgency,
                "escalation_raised",
                handoff_id=str(current.id),
                due_in_s=_seconds(current.due_at, now),
            )
        return None
    if await db.scalar(select(Handoff.id).where(_escalated_before(session_id)).limit(1)):
        return None  # escalated once already: one safety message per session escalation
    candidates = select_partners(partners, session.locale, session.urgency)
    handoff = Handoff(
        id=uuid.uuid4(),
        session_id=session_id,
        level=session.urgency,
        trigger="auto",
        status="scheduled",
        partner=candidates[0].name if candidates else None,
        due_at=due_at,
        attempts=0,
        active_rescue=False,
        created_at=now,
        updated_at=now,
    )
    db.add(handoff)
    await db.flush()
    _audit(
        db,
        "escalation_started",
        session_id,
        handoff_id=str(handoff.id),
        level=session.urgency,
        due_at=due_at.isoformat(),
        partner=handoff.partner,
    )
    await _alert_supervisors(
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


def _escalated_before(session_id: Any) -> Any:
    """A handoff that still speaks for the session: open, or ended in a way that leaves it to
    people (undeliverable and failed keep it top of the queue with supervisors alerted; a
    fresh clock would only repeat that). Stood-down rows do not count."""
    return (Handoff.session_id == session_id) & Handoff.status.not_in(STOOD_DOWN)


async def chats_turned_imminent(db: AsyncSession, *, limit: int = 100) -> list[uuid.UUID]:
    """Chats a volunteer holds (``active``, or mid warm transfer and still theirs) that reached
    ``imminent`` without ever escalating at that level (a session that escalated before it was
    answered already had its safety message, and the volunteer took it knowing)."""
    return list(
        (
            await db.scalars(
                select(ChatSession.id)
                .where(
                    or_(
                        ChatSession.status == "active",
                        (ChatSession.status == "transferring") & _holds(ChatSession.id),
                    ),
                    ChatSession.urgency >= int(Level.imminent),
                    ~exists().where(
                        Handoff.session_id == ChatSession.id,
                        Handoff.level >= int(Level.imminent),
                    ),
                )
                .limit(limit)
            )
        ).all()
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
    session = await _lock_session(db, session_id)
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
    _audit(
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
                (volunteer_channel(h.volunteer_id), {"type": "alert", **for_holder})
                for h in holders
                if h.role not in _SUPERVISOR_ROLES
            ),
        ],
        db=db,
    )
    return record


def _seconds(at: datetime, now: datetime) -> float:
    return round(max(0.0, (at - now).total_seconds()), 3)


# ---------------------------------------------------------------------------------------------
# What the visitor is owed.


@dataclass(frozen=True, slots=True)
class Owed:
    handoff_id: uuid.UUID
    session_id: uuid.UUID
    kind: MessageKind
    locale: str | None
    partner: str | None

    @property
    def client_msg_id(self) -> str:
        # Deterministic: a resend after a crash is recognised by the committer, never doubled.
        return f"esc-{self.kind.value}-{self.handoff_id}"[:64]


async def owed_messages(db: AsyncSession, *, limit: int = 100) -> list[Owed]:
    rows = (
        await db.execute(
            select(
                Handoff.id,
                Handoff.session_id,
                Handoff.trigger,
                Handoff.safety_sent_at,
                Handoff.notice_due,
                Handoff.partner,
                ChatSession.locale,
            )
            .join(ChatSession, ChatSession.id == Handoff.session_id)
            .where(
                ((Handoff.safety_sent_at.is_(None)) & (Handoff.trigger.in_(("auto", "in_chat"))))
                | Handoff.notice_due.is_not(None)
            )
            .order_by(Handoff.created_at)
            .limit(limit)
        )
    ).all()
    owed: list[Owed] = []
    for r in rows:
        if r.safety_sent_at is None:
            kind = MessageKind.safety_in_chat if r.trigger == "in_chat" else MessageKind.safety
            owed.append(Owed(r.id, r.session_id, kind, r.locale, r.partner))
        elif r.notice_due is not None:
            owed.append(Owed(r.id, r.session_id, MessageKind(r.notice_due), r.locale, r.partner))
    return owed


async def message_sent(
    db: AsyncSession, owed: Owed, *, seq: int | None, now: datetime | None = None
) -> None:
    """Record that ``owed`` reached the transcript (``seq``), or could not (session over)."""
    now = now or utcnow()
    if owed.kind in SAFETY_KINDS:
        await db.execute(
            update(Handoff)
            .where(Handoff.id == owed.handoff_id, Handoff.safety_sent_at.is_(None))
            .values(safety_sent_at=now, updated_at=now)
            .execution_options(**_NO_SYNC)
        )
    else:
        await db.execute(
            update(Handoff)
            .where(Handoff.id == owed.handoff_id, Handoff.notice_due == owed.kind.value)
            .values(notice_due=None, updated_at=now)
            .execution_options(**_NO_SYNC)
        )
    _audit(
        db,
        "safety_message_sent" if owed.kind in SAFETY_KINDS else "handoff_notice_sent",
        owed.session_id,
        handoff_id=str(owed.handoff_id),
        kind=owed.kind.value,
        seq=seq,
    )


# ---------------------------------------------------------------------------------------------
# The deadline: hand off, or stand down because a volunteer answered.


def build_payload(
    handoff: Handoff, session: ChatSession, settings: Settings, now: datetime
) -> dict[str, Any]:
    """Only what the partner needs (SPEC §5). Transcript and contact are not shared: consent
    capture does not exist yet, so ``consent`` says so explicitly."""
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
        "consent": {"transcript": False, "contact": False, "location": False},
    }
    if settings.public_base_url:
        base = settings.public_base_url.rstrip("/")
        payload["callback_url"] = f"{base}/v1/handoffs/{handoff.id}/status"
    return payload


def payload_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def _start_delivery(
    db: AsyncSession,
    bus: Bus,
    handoff: Handoff,
    session: ChatSession,
    settings: Settings,
    now: datetime,
) -> None:
    handoff.status = "delivering"
    handoff.level = max(handoff.level, session.urgency)
    handoff.payload = build_payload(handoff, session, settings, now)
    handoff.next_attempt_at = now
    handoff.delivery_deadline_at = now + timedelta(seconds=settings.handoff_delivery_deadline_s)
    handoff.updated_at = now
    _audit(
        db,
        "handoff_started",
        session.id,
        handoff_id=str(handoff.id),
        trigger=handoff.trigger,
        level=session.urgency,
        payload_keys=sorted(handoff.payload),
    )
    await _alert_supervisors(
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
    await _write_first(db)
    rows = (
        await db.scalars(
            select(Handoff)
            .where(Handoff.status == "scheduled", Handoff.due_at <= now)
            .order_by(Handoff.due_at)
            .limit(limit)
            .with_for_update(**_skip_locked(db))
            .execution_options(populate_existing=True)
        )
    ).all()
    started: list[uuid.UUID] = []
    for handoff in rows:
        session = await db.get(ChatSession, handoff.session_id)
        if session is None or not await _is_unanswered(db, session):
            # Answered meanwhile (accepted, or accepted and now mid warm transfer): the clock
            # must not hand the visitor to a partner while a volunteer is in the chat.
            handoff.status = "cancelled"
            handoff.updated_at = now
            _audit(
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
        await _start_delivery(db, bus, handoff, session, settings, now)
        started.append(handoff.id)
    return started


# ---------------------------------------------------------------------------------------------
# Delivery attempts.


@dataclass(frozen=True, slots=True)
class Claimed:
    handoff_id: uuid.UUID
    session_id: uuid.UUID
    number: int
    body: bytes
    locale: str | None
    level: int
    deadline_at: datetime


async def claim_deliveries(
    db: AsyncSession, *, lease_s: float, now: datetime | None = None, limit: int = 20
) -> list[Claimed]:
    """Take due delivery attempts for this instance: the lease (``next_attempt_at`` pushed
    forward) keeps others off while the request is in flight, and hands the attempt to anyone
    once it expires, e.g. after this process died mid-request."""
    now = now or utcnow()
    await _write_first(db)
    rows = (
        await db.execute(
            select(Handoff, ChatSession.locale)
            .join(ChatSession, ChatSession.id == Handoff.session_id)
            .where(Handoff.status == "delivering", Handoff.next_attempt_at <= now)
            .order_by(Handoff.next_attempt_at)
            .limit(limit)
            .with_for_update(of=Handoff, **_skip_locked(db))
            .execution_options(populate_existing=True)
        )
    ).all()
    claimed: list[Claimed] = []
    for handoff, locale in rows:
        handoff.attempts += 1
        handoff.next_attempt_at = now + timedelta(seconds=lease_s)
        handoff.updated_at = now
        assert handoff.payload is not None
        assert handoff.delivery_deadline_at is not None
        claimed.append(
            Claimed(
                handoff_id=handoff.id,
                session_id=handoff.session_id,
                number=handoff.attempts,
                body=payload_bytes(handoff.payload),
                locale=locale,
                level=handoff.level,
                deadline_at=handoff.delivery_deadline_at,
            )
        )
    return claimed


async def release_deliveries(
    db: AsyncSession, claimed: list[Claimed], *, now: datetime | None = None
) -> list[uuid.UUID]:
    """Hand claimed attempts back before their lease runs out (this process is stopping):
    due at once, for any instance. Only while the claim is still ours — the same attempt
    number, still delivering — so an attempt another instance took over or recorded meanwhile
    is left alone. Re-sending is safe: the partner deduplicates by ``Idempotency-Key``."""
    now = now or utcnow()
    released: list[uuid.UUID] = []
    for item in claimed:
        row = (
            await db.execute(
                update(Handoff)
                .where(
                    Handoff.id == item.handoff_id,
                    Handoff.status == "delivering",
                    Handoff.attempts == item.number,
                )
                .values(next_attempt_at=now, updated_at=now)
                .returning(Handoff.id)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if row is not None:
            released.append(row.id)
    return released


@dataclass(frozen=True, slots=True)
class AttemptResult:
    partner: str | None
    outcome: str  # acknowledged | http_error | timeout | connect_error | breaker_open | no_partner
    status_code: int | None
    duration_ms: float
    error: str | None
    started_at: datetime

    @property
    def acknowledged(self) -> bool:
        return self.outcome == "acknowledged"


async def _record_outcome(
    db: AsyncSession,
    bus: Bus,
    session_id: uuid.UUID,
    urgency: int,
    *,
    action: str,
    reason: str,
    **details: Any,
) -> None:
    """How a delivery ended: audited as ``action`` and told to supervisors as ``reason``, with
    the same details in both."""
    _audit(db, action, session_id, **details)
    await _alert_supervisors(db, bus, session_id, urgency, reason, **details)


async def record_attempt(
    db: AsyncSession,
    bus: Bus,
    claimed: Claimed,
    result: AttemptResult,
    *,
    retry_in_s: float,
    now: datetime | None = None,
) -> str:
    """Store the attempt and move the handoff on: delivered, retry later, or (deadline passed)
    undeliverable — then the session stays where it is in the queue (top: it is urgent and has
    waited longest), supervisors are alerted and the visitor is given the hotline's number."""
    now = now or utcnow()
    db.add(
        HandoffAttempt(
            handoff_id=claimed.handoff_id,
            number=claimed.number,
            partner=result.partner,
            started_at=result.started_at,
            duration_ms=round(result.duration_ms, 3),
            outcome=result.outcome,
            status_code=result.status_code,
            error=result.error,
        )
    )
    _audit(
        db,
        "handoff_attempt",
        claimed.session_id,
        handoff_id=str(claimed.handoff_id),
        number=claimed.number,
        partner=result.partner,
        outcome=result.outcome,
        status_code=result.status_code,
        duration_ms=round(result.duration_ms, 1),
    )
    handoff = (
        await db.execute(
            select(Handoff)
            .where(Handoff.id == claimed.handoff_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if handoff is None or handoff.status != "delivering":
        # The partner called back before its 2xx reached us, or a supervisor stepped in.
        return "superseded" if handoff is None else handoff.status
    handoff.updated_at = now
    if result.acknowledged:
        handoff.status = "delivered"
        handoff.partner = result.partner
        handoff.delivered_at = now
        handoff.next_attempt_at = None
        handoff.notice_due = MessageKind.handoff_started.value
        await _record_outcome(
            db,
            bus,
            claimed.session_id,
            handoff.level,
            action="handoff_delivered",
            reason="handoff_delivered",
            handoff_id=str(handoff.id),
            partner=result.partner,
            attempts=claimed.number,
        )
        return handoff.status
    if now >= claimed.deadline_at:
        handoff.status = "undeliverable"
        handoff.next_attempt_at = None
        handoff.notice_due = MessageKind.handoff_failed.value
        await _record_outcome(
            db,
            bus,
            claimed.session_id,
            handoff.level,
            action="handoff_undeliverable",
            reason="handoff_failed",
            handoff_id=str(handoff.id),
            attempts=claimed.number,
            last_outcome=result.outcome,
        )
        return handoff.status
    # The last try lands on the deadline itself rather than being skipped.
    handoff.next_attempt_at = min(now + timedelta(seconds=retry_in_s), claimed.deadline_at)
    return handoff.status


# ---------------------------------------------------------------------------------------------
# Partner status callbacks.

_CALLBACK_FROM: dict[str, tuple[str, ...]] = {
    "accepted": ("delivering", "delivered", "undeliverable"),
    "connected": ("delivering", "delivered", "accepted", "undeliverable"),
    "failed": ("delivering", "delivered", "accepted"),
}


async def get_handoff(db: AsyncSession, handoff_id: uuid.UUID) -> Handoff:
    handoff = await db.get(Handoff, handoff_id)
    if handoff is None:
        raise HandoffNotFound("no such handoff")
    return handoff


async def partners_of(db: AsyncSession, handoff: Handoff) -> set[str]:
    """Partners this handoff was sent to: only they may call back about it."""
    names = set(
        (
            await db.scalars(
                select(HandoffAttempt.partner).where(
                    HandoffAttempt.handoff_id == handoff.id,
                    HandoffAttempt.partner.is_not(None),
                    HandoffAttempt.outcome != "breaker_open",
                )
            )
        ).all()
    )
    if handoff.partner:
        names.add(handoff.partner)
    return {n for n in names if n}


async def apply_partner_status(
    db: AsyncSession,
    bus: Bus,
    *,
    handoff_id: uuid.UUID,
    status: str,
    partner: str,
    reference: str | None,
    now: datetime | None = None,
) -> Handoff:
    now = now or utcnow()
    await _write_first(db)
    handoff = (
        await db.execute(
            select(Handoff)
            .where(Handoff.id == handoff_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if handoff is None:
        raise HandoffNotFound("no such handoff")
    _audit(
        db,
        "handoff_callback",
        handoff.session_id,
        actor_type="partner",
        actor_id=partner,
        handoff_id=str(handoff.id),
        status=status,
        previous=handoff.status,
        reference=reference,
    )
    if handoff.status == status or (handoff.status == "connected" and status == "accepted"):
        return handoff  # a repeated (or late, out-of-order) callback: nothing new
    if handoff.status not in _CALLBACK_FROM[status]:
        raise InvalidTransition(f"a {handoff.status} handoff cannot become {status}")
    first_success = handoff.status not in ("accepted", "connected") and status != "failed"
    handoff.status = status
    handoff.partner = partner
    handoff.partner_status_at = now
    handoff.next_attempt_at = None
    handoff.updated_at = now
    if reference is not None:
        handoff.partner_reference = reference
    if status == "failed":
        handoff.notice_due = MessageKind.handoff_failed.value
        # Back to the queue at its old place (waiting_since is kept): a human must take it.
        await change_status(
            db,
            bus,
            session_id=handoff.session_id,
            to=SessionStatus.waiting,
            reason="handoff_failed",
            actor_type="partner",
            actor_id=partner,
            allowed_from={SessionStatus.handed_off},
        )
        reason = "handoff_failed"
    else:
        if first_success:
            handoff.notice_due = MessageKind.handed_off.value
        await change_status(
            db,
            bus,
            session_id=handoff.session_id,
            to=SessionStatus.handed_off,
            reason=f"partner_{status}",
            actor_type="partner",
            actor_id=partner,
            allowed_from=set(LIVE),
        )
        reason = "handed_off" if status == "accepted" else "handoff_connected"
    await _alert_supervisors(
        db,
        bus,
        handoff.session_id,
        handoff.level,
        reason,
        handoff_id=str(handoff.id),
        partner=partner,
        partner_status=status,
    )
    return handoff


# ---------------------------------------------------------------------------------------------
# Handoff requested by a person; active rescue.


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
    session = await _lock_session(db, session_id)
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
    handoff = await _open_handoff(db, session_id)
    if handoff is not None and handoff.status != "scheduled":
        if active_rescue and not handoff.active_rescue:
            handoff.active_rescue = True
            _audit(db, "handoff_marked_rescue", session_id, handoff_id=str(handoff.id), **actor)
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
    _audit(
        db, "handoff_requested", session_id, handoff_id=str(handoff.id), trigger=trigger, **actor
    )
    await _start_delivery(db, bus, handoff, session, settings, now)
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
    session = await _lock_session(db, session_id)
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
    _audit(
        db,
        "active_rescue_requested",
        session_id,
        actor_type=principal.role,
        actor_id=principal.actor_id,
        rescue_id=str(rescue.id),
    )
    await _alert_supervisors(
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
    await _write_first(db)
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
    _audit(
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
    await _alert_supervisors(
        db,
        bus,
        rescue.session_id,
        urgency or 0,
        action,
        rescue_id=str(rescue.id),
        decided_by=principal.actor_id,
    )
    return rescue


async def attempts_of(db: AsyncSession, handoff_id: uuid.UUID) -> Sequence[HandoffAttempt]:
    return (
        await db.scalars(
            select(HandoffAttempt)
            .where(HandoffAttempt.handoff_id == handoff_id)
            .order_by(HandoffAttempt.number, HandoffAttempt.id)
        )
    ).all()


def partner_for(partners: PartnersConfig | None, name: str | None) -> Partner | None:
    return None if partners is None else partners.by_name(name)


async def session_locale(db: AsyncSession, session_id: uuid.UUID) -> str | None:
    return await db.scalar(select(ChatSession.locale).where(ChatSession.id == session_id))
