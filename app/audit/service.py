"""The one function that writes the audit log."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it, as the audit log names them: ``system``, ``visitor``, ``partner`` or a
    volunteer's role, with an id where there is one (never a secret)."""

    type: str
    id: str | None = None


SYSTEM = Actor("system")
VISITOR = Actor("visitor")


def record(
    db: AsyncSession,
    actor: Actor,
    action: str,
    *,
    subject_type: str,
    subject_id: str,
    details: dict[str, Any] | None = None,
) -> Event:
    return record_event(
        db,
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        details=details,
    )
