"""Volunteer presence from WebSocket heartbeats, and what happens when someone disappears.

Presence lives in the database (not in a socket's memory) so that every instance routes from the
same truth and a crashed instance's volunteers still time out.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record_event
from app.core.config import Settings
from app.core.db import utcnow
from app.domain.assignment import HOLDING
from app.domain.machine import values
from app.routing import assignments
from app.routing.models import Assignment, Volunteer
from app.routing.notices import Notice


async def go_online(
    db: AsyncSession,
    volunteer_id: uuid.UUID,
    status: str = "online",
    *,
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    await db.execute(
        update(Volunteer)
        .where(Volunteer.id == volunteer_id)
        .values(presence=status, last_heartbeat_at=now, offline_since=None)
        .execution_options(synchronize_session=False)
    )
    record_event(
        db,
        actor_type="volunteer",
        actor_id=str(volunteer_id),
        action=f"presence_{status}",
        subject_type="volunteer",
        subject_id=str(volunteer_id),
    )


async def heartbeat(
    db: AsyncSession, volunteer_id: uuid.UUID, status: str, *, now: datetime | None = None
) -> None:
    """A live socket re-asserts its presence, also after a timeout briefly marked it offline."""
    now = now or utcnow()
    await db.execute(
        update(Volunteer)
        .where(Volunteer.id == volunteer_id)
        .values(presence=status, last_heartbeat_at=now, offline_since=None)
        .execution_options(synchronize_session=False)
    )


async def go_offline(
    db: AsyncSession, volunteer_id: uuid.UUID, *, now: datetime | None = None
) -> None:
    now = now or utcnow()
    await db.execute(
        update(Volunteer)
        .where(Volunteer.id == volunteer_id, Volunteer.presence != "offline")
        .values(presence="offline", offline_since=now)
        .execution_options(synchronize_session=False)
    )
    record_event(
        db,
        actor_type="volunteer",
        actor_id=str(volunteer_id),
        action="presence_offline",
        subject_type="volunteer",
        subject_id=str(volunteer_id),
    )


async def sweep(
    db: AsyncSession, settings: Settings, *, now: datetime | None = None
) -> list[Notice]:
    """Missed heartbeats -> offline; offline -> pending offers withdrawn at once, chats returned
    to the queue (urgency and original wait kept) once the grace period has passed."""
    now = now or utcnow()
    stale = now - timedelta(seconds=settings.volunteer_heartbeat_timeout_s)
    timed_out = (
        await db.scalars(
            update(Volunteer)
            .where(
                Volunteer.presence != "offline",
                or_(Volunteer.last_heartbeat_at.is_(None), Volunteer.last_heartbeat_at < stale),
            )
            .values(presence="offline", offline_since=now)
            .returning(Volunteer.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for volunteer_id in timed_out:
        record_event(
            db,
            actor_type="system",
            actor_id=None,
            action="presence_timeout",
            subject_type="volunteer",
            subject_id=str(volunteer_id),
        )
    grace_over = now - timedelta(seconds=settings.volunteer_grace_s)
    rows = await db.execute(
        select(Assignment.volunteer_id, Volunteer.offline_since)
        .join(Volunteer, Volunteer.id == Assignment.volunteer_id)
        .where(
            Volunteer.presence == "offline",
            Assignment.status.in_(values(HOLDING)),
            or_(
                Assignment.status == "offered",
                and_(Volunteer.offline_since.is_not(None), Volunteer.offline_since <= grace_over),
            ),
        )
        .distinct()
    )
    notices: list[Notice] = []
    for volunteer_id, offline_since in rows.all():
        include_active = offline_since is not None and offline_since <= grace_over
        notices.extend(
            await assignments.requeue_volunteer(
                db, volunteer_id, include_active=include_active, now=now
            )
        )
    return notices
