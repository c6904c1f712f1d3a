"""High-urgency visitors who dropped (SPEC §3): never given up on by software, put in front of a
supervisor instead.

The abandonment sweeper (``app.chat.presence``) leaves ``high``/``imminent`` sessions alone. This
watch finds those whose visitor has been gone past the grace period (``visitor_seen_at``, kept
fresh by every instance's heartbeat, decides — as for abandonment), and for each drop:

* records ``visitor_lost`` in the audit log and stamps ``chat_sessions.visitor_lost_at``;
* alerts supervisors once: ``{"type": "alert", "kind": "at_risk", "reason": "visitor_lost"}``
  on their sockets, on every instance (the supervisors bus channel).

The stamp is set by a conditional UPDATE (only if not already stamped for this drop), so however
many instances sweep, one records and alerts. When the visitor comes back (``visitor_seen_at``
moves past the stamp) the stamp is cleared with ``visitor_returned``, and a later drop alerts
again. The session keeps its state throughout: it stays in the queue or with its volunteer.

The list supervisors see (``GET /v1/dashboard/at-risk``) is derived from the same columns, not
from the stamp, so it is right even between sweeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import record_event
from app.bus.base import Bus, Event
from app.bus.events import SupervisorAlert, encode
from app.chat.models import ChatSession
from app.core.db import skip_locked, transaction, utcnow
from app.core.worker import PeriodicWorker
from app.routing.claims import LIVE_STATUSES
from app.routing.models import Assignment
from app.routing.notices import SUPERVISORS_CHANNEL
from app.triage.types import Level

log = structlog.get_logger(__name__)

MIN_URGENCY = int(Level.high)
_NO_SYNC: dict[str, Any] = {"synchronize_session": False}


class AtRiskSession(BaseModel):
    session_id: uuid.UUID
    status: str = Field(description="unchanged by the drop: waiting, offered, active, transferring")
    urgency: str
    urgency_value: int
    signals: list[str]
    locale: str | None
    waiting_since: datetime
    visitor_seen_at: datetime = Field(description="last sign of the visitor (heartbeat or frame)")
    gone_s: float = Field(description="seconds since visitor_seen_at")
    alerted_at: datetime | None = Field(
        description="when supervisors were alerted about this drop (null: not yet swept)"
    )
    volunteer_id: uuid.UUID | None = Field(description="the volunteer holding the chat, if any")


class AtRiskList(BaseModel):
    grace_s: float
    sessions: list[AtRiskSession] = Field(description="most urgent first, then longest gone")


def _gone(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [
        ChatSession.status.in_(LIVE_STATUSES),
        ChatSession.urgency >= MIN_URGENCY,
        ChatSession.visitor_seen_at < cutoff,
    ]


# Not yet stamped for this drop (never stamped, or stamped for an earlier one they returned from).
_NOT_STAMPED = or_(
    ChatSession.visitor_lost_at.is_(None),
    ChatSession.visitor_lost_at < ChatSession.visitor_seen_at,
)


def alert(session_id: uuid.UUID, *, urgency: int, reason: str, **extra: Any) -> Event:
    level = Level(urgency).name
    event = SupervisorAlert("at_risk", str(session_id), level, urgency, reason, extra)
    return (SUPERVISORS_CHANNEL, encode(event))


async def lost_candidates(
    db: AsyncSession, *, grace_s: float, now: datetime, limit: int = 200
) -> list[uuid.UUID]:
    cutoff = now - timedelta(seconds=grace_s)
    rows = await db.scalars(select(ChatSession.id).where(*_gone(cutoff), _NOT_STAMPED).limit(limit))
    return list(rows.all())


async def mark_lost(
    db: AsyncSession, bus: Bus, *, session_id: uuid.UUID, grace_s: float, now: datetime
) -> bool:
    """Stamp, audit and alert, if the visitor is still gone and this drop is not yet stamped
    (another instance, the visitor's return or a close since the candidate was read: no-op)."""
    cutoff = now - timedelta(seconds=grace_s)
    row = (
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id == session_id, *_gone(cutoff), _NOT_STAMPED)
            .values(visitor_lost_at=now)
            .returning(ChatSession.status, ChatSession.urgency, ChatSession.visitor_seen_at)
            .execution_options(**_NO_SYNC)
        )
    ).one_or_none()
    if row is None:
        return False
    gone_s = round((now - row.visitor_seen_at).total_seconds(), 1)
    record_event(
        db,
        actor_type="system",
        actor_id=None,
        action="visitor_lost",
        subject_type="session",
        subject_id=str(session_id),
        details={
            "status": row.status,
            "urgency": row.urgency,
            "gone_s": gone_s,
            "grace_s": grace_s,
        },
    )
    await bus.publish_many(
        [
            alert(
                session_id,
                urgency=row.urgency,
                reason="visitor_lost",
                status=row.status,
                gone_s=gone_s,
            )
        ],
        db=db,
    )
    return True


async def clear_returned(db: AsyncSession, bus: Bus) -> list[uuid.UUID]:
    """Visitors seen again since their drop was stamped: unstamp, audit, tell supervisors.

    Rows another transaction holds (the visitor's resume, a message being committed) are left
    for the next pass: a bulk UPDATE would lock in scan order and wait while holding the rest,
    and the writers that lock sessions in id order could then deadlock with it."""
    returned = (
        ChatSession.visitor_lost_at.is_not(None),
        ChatSession.visitor_seen_at > ChatSession.visitor_lost_at,
        ChatSession.status.in_(LIVE_STATUSES),
    )
    free = select(ChatSession.id).where(*returned).with_for_update(**skip_locked(db))
    rows = (
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id.in_(free.scalar_subquery()), *returned)
            .values(visitor_lost_at=None)
            .returning(ChatSession.id, ChatSession.status, ChatSession.urgency)
            .execution_options(**_NO_SYNC)
        )
    ).all()
    events: list[Event] = []
    for row in rows:
        record_event(
            db,
            actor_type="system",
            actor_id=None,
            action="visitor_returned",
            subject_type="session",
            subject_id=str(row.id),
            details={"status": row.status, "urgency": row.urgency},
        )
        events.append(
            alert(row.id, urgency=row.urgency, reason="visitor_returned", status=row.status)
        )
    if events:
        await bus.publish_many(events, db=db)
    return [row.id for row in rows]


async def listing(db: AsyncSession, *, grace_s: float, now: datetime | None = None) -> AtRiskList:
    now = now or utcnow()
    cutoff = now - timedelta(seconds=grace_s)
    holder = (
        select(Assignment.volunteer_id)
        .where(Assignment.session_id == ChatSession.id, Assignment.status == "active")
        .scalar_subquery()
    )
    rows = (
        await db.execute(
            select(ChatSession, holder.label("volunteer_id"))
            .where(*_gone(cutoff))
            .order_by(ChatSession.urgency.desc(), ChatSession.visitor_seen_at)
        )
    ).all()
    sessions = []
    for session, volunteer_id in rows:
        lost_at = session.visitor_lost_at
        sessions.append(
            AtRiskSession(
                session_id=session.id,
                status=session.status,
                urgency=Level(session.urgency).name,
                urgency_value=session.urgency,
                signals=list(session.signals or []),
                locale=session.locale,
                waiting_since=session.waiting_since,
                visitor_seen_at=session.visitor_seen_at,
                gone_s=round((now - session.visitor_seen_at).total_seconds(), 1),
                alerted_at=lost_at
                if lost_at is not None and lost_at > session.visitor_seen_at
                else None,
                volunteer_id=volunteer_id,
            )
        )
    return AtRiskList(grace_s=grace_s, sessions=sessions)


class LostVisitorWatch(PeriodicWorker):
    """The sweep each instance runs beside the abandonment sweeper (built in the lifespan)."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: Bus,
        grace_s: float,
        interval_s: float,
        is_local: Callable[[uuid.UUID], bool] = lambda _: False,
    ) -> None:
        super().__init__(
            "lost-visitor-watch", interval_s=interval_s, failure_event="lost_visitor_sweep_failed"
        )
        self._sessionmaker = sessionmaker
        self._bus = bus
        self._grace_s = grace_s
        # A visitor with a socket on this instance is here; its heartbeat is only late.
        self._is_local = is_local

    async def tick(self) -> None:
        await self.sweep()

    async def sweep(self) -> list[uuid.UUID]:
        """Stamp and alert new drops; returns the sessions stamped by this call."""
        now = utcnow()
        async with self._sessionmaker() as db:
            candidates = await lost_candidates(db, grace_s=self._grace_s, now=now)
        lost = []
        for session_id in candidates:
            if self._is_local(session_id):
                continue
            async with transaction(self._sessionmaker) as db:
                if await mark_lost(
                    db, self._bus, session_id=session_id, grace_s=self._grace_s, now=now
                ):
                    lost.append(session_id)
                    log.warning("visitor_lost", session_id=str(session_id))
        async with transaction(self._sessionmaker) as db:
            for session_id in await clear_returned(db, self._bus):
                log.info("visitor_returned", session_id=str(session_id))
        return lost
