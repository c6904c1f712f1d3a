"""Pydantic shapes of the handoff callback, the escalation REST API and the volunteer-socket
frames escalation adds (separate from the ORM models)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.escalation.models import Handoff, HandoffAttempt, RescueRequest
from app.triage.types import Level


class PartnerStatus(BaseModel):
    """The body a partner POSTs to ``/v1/handoffs/{id}/status`` (signed like our webhook)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["accepted", "connected", "failed"]
    reference: str | None = Field(default=None, max_length=200)


class AttemptOut(BaseModel):
    number: int
    partner: str | None
    started_at: datetime
    duration_ms: float
    outcome: str
    status_code: int | None

    @classmethod
    def of(cls, row: HandoffAttempt) -> AttemptOut:
        return cls(
            number=row.number,
            partner=row.partner,
            started_at=row.started_at,
            duration_ms=row.duration_ms,
            outcome=row.outcome,
            status_code=row.status_code,
        )


class HandoffOut(BaseModel):
    handoff_id: uuid.UUID
    session_id: uuid.UUID
    status: str
    urgency: str
    trigger: str
    partner: str | None
    due_at: datetime
    delivered_at: datetime | None
    partner_status_at: datetime | None
    attempts: int
    active_rescue: bool
    attempt_log: list[AttemptOut] = Field(default_factory=list)

    @classmethod
    def of(cls, row: Handoff, attempts: list[HandoffAttempt] | None = None) -> HandoffOut:
        return cls(
            handoff_id=row.id,
            session_id=row.session_id,
            status=row.status,
            urgency=Level(row.level).name,
            trigger=row.trigger,
            partner=row.partner,
            due_at=row.due_at,
            delivered_at=row.delivered_at,
            partner_status_at=row.partner_status_at,
            attempts=row.attempts,
            active_rescue=row.active_rescue,
            attempt_log=[AttemptOut.of(a) for a in attempts or []],
        )


class RescueOut(BaseModel):
    rescue_id: uuid.UUID
    session_id: uuid.UUID
    status: str
    requested_by: str
    decided_by: str | None
    handoff_id: uuid.UUID | None

    @classmethod
    def of(cls, row: RescueRequest) -> RescueOut:
        return cls(
            rescue_id=row.id,
            session_id=row.session_id,
            status=row.status,
            requested_by=row.requested_by,
            decided_by=row.decided_by,
            handoff_id=row.handoff_id,
        )


class CallbackAck(BaseModel):
    handoff_id: uuid.UUID
    status: str
