"""What supervisors (and a holder) are told, and the audit rows escalation writes: both in the
caller's transaction, so nobody hears of a change that was rolled back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record_event
from app.bus import Bus, Event
from app.bus.events import SupervisorAlert, encode
from app.routing.notices import SUPERVISORS_CHANNEL
from app.triage.types import Level

# Roles whose sockets hear the supervisors channel (``Principal.is_supervisor``).
SUPERVISOR_ROLES = ("supervisor", "admin")


def alert(session_id: uuid.UUID, urgency: int, reason: str, **extra: Any) -> Event:
    event = SupervisorAlert(
        "escalation", str(session_id), Level(urgency).name, urgency, reason, extra
    )
    return (SUPERVISORS_CHANNEL, encode(event))


async def alert_supervisors(
    db: AsyncSession, bus: Bus, session_id: uuid.UUID, urgency: int, reason: str, **extra: Any
) -> None:
    """One supervisor alert, published with the caller's transaction (never ahead of it)."""
    await bus.publish_many([alert(session_id, urgency, reason, **extra)], db=db)


def audit(
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


def seconds_until(at: datetime, now: datetime) -> float:
    return round(max(0.0, (at - now).total_seconds()), 3)


async def record_outcome(
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
    audit(db, action, session_id, **details)
    await alert_supervisors(db, bus, session_id, urgency, reason, **details)
