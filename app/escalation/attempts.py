"""Delivery attempts: leased to one instance at a time, recorded, and the handoff moved on
(delivered, retried later, or undeliverable at the deadline)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.bus import Bus
from app.chat.models import ChatSession
from app.core.db import skip_locked, utcnow
from app.domain.handoff import HandoffStatus
from app.escalation.alerts import audit, record_outcome
from app.escalation.clock import payload_bytes
from app.escalation.lifecycle import advance
from app.escalation.models import Handoff, HandoffAttempt
from app.escalation.repository import write_first
from app.escalation.templates import MessageKind


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
    await write_first(db)
    rows = (
        await db.execute(
            select(Handoff, ChatSession.locale)
            .join(ChatSession, ChatSession.id == Handoff.session_id)
            .where(Handoff.status == "delivering", Handoff.next_attempt_at <= now)
            .order_by(Handoff.next_attempt_at)
            .limit(limit)
            .with_for_update(of=Handoff, **skip_locked(db))
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


def _store(db: AsyncSession, claimed: Claimed, result: AttemptResult) -> None:
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
    audit(
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
    _store(db, claimed, result)
    handoff = (
        await db.execute(
            select(Handoff)
            .where(Handoff.id == claimed.handoff_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if handoff is None or handoff.status != HandoffStatus.delivering:
        # The partner called back before its 2xx reached us, or a supervisor stepped in.
        return "superseded" if handoff is None else handoff.status
    handoff.updated_at = now
    if result.acknowledged:
        advance(handoff, HandoffStatus.delivered, now)
        handoff.partner = result.partner
        handoff.delivered_at = now
        handoff.next_attempt_at = None
        handoff.notice_due = MessageKind.handoff_started.value
        await record_outcome(
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
        advance(handoff, HandoffStatus.undeliverable, now)
        handoff.next_attempt_at = None
        handoff.notice_due = MessageKind.handoff_failed.value
        await record_outcome(
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
