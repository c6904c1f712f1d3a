"""Handoffs, their delivery attempts and active-rescue requests.

A ``Handoff`` row IS the escalation clock: it is written the moment a session escalates, so a
restart (or another instance) finds the clock, the retry schedule and the idempotency key in the
database, never in process memory.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, JSONType, UTCDateTime, new_uuid, utcnow

# A session has at most one handoff in these states (partial unique index below).
OPEN_HANDOFF_STATUSES = ("scheduled", "delivering", "delivered")
_OPEN_SQL = "status IN ('scheduled', 'delivering', 'delivered')"


class Handoff(Base):
    __tablename__ = "handoffs"

    # Also the webhook's Idempotency-Key: stable across retries and restarts.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE")
    )
    level: Mapped[int] = mapped_column(SmallInteger)
    # auto | volunteer_request | supervisor_request | active_rescue
    trigger: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[str | None] = mapped_column(String(64))
    # scheduled -> delivering -> delivered -> accepted -> connected; or failed / undeliverable /
    # cancelled (a volunteer answered before the deadline).
    status: Mapped[str] = mapped_column(String(16))
    partner: Mapped[str | None] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    safety_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A message the visitor is still owed about this handoff (a templates.MessageKind), sent
    # by the clock loop through the chat committer and cleared after: survives a crash between.
    notice_due: Mapped[str | None] = mapped_column(String(32))
    # Exactly the JSON body sent on every attempt (built once, so retries are byte-identical).
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivery_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    partner_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    partner_reference: Mapped[str | None] = mapped_column(String(200))
    active_rescue: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_handoffs_session_id", "session_id"),
        Index("ix_handoffs_status_due_at", "status", "due_at"),
        Index("ix_handoffs_status_next_attempt_at", "status", "next_attempt_at"),
        Index(
            "uq_handoffs_one_open_per_session",
            "session_id",
            unique=True,
            postgresql_where=text(_OPEN_SQL),
            sqlite_where=text(_OPEN_SQL),
        ),
    )


class HandoffAttempt(Base):
    """One delivery attempt (or one skipped because the partner's breaker was open)."""

    __tablename__ = "handoff_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    handoff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    partner: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[float] = mapped_column(Float)
    # acknowledged | http_error | timeout | connect_error | breaker_open | no_partner
    outcome: Mapped[str] = mapped_column(String(32))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_handoff_attempts_handoff_id", "handoff_id", "number"),)


class RescueRequest(Base):
    """Active rescue: a supervisor requests it, a supervisor confirms it (two audited steps)."""

    __tablename__ = "rescue_requests"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16))  # requested | confirmed | cancelled
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    handoff_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("handoffs.id", ondelete="SET NULL")
    )

    __table_args__ = (Index("ix_rescue_requests_session_id", "session_id"),)
