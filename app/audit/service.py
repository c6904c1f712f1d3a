"""The one function that writes the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import Event


def record_event(
    db: AsyncSession,
    *,
    actor_type: str,
    actor_id: str | None,
    action: str,
    subject_type: str,
    subject_id: str,
    details: dict[str, Any] | None = None,
) -> Event:
    """Adds the event to the caller's transaction: it commits, or not, with what it records."""
    event = Event(
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        details=details or {},
    )
    db.add(event)
    return event
