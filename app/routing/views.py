"""Read models for dashboards: the queue, sessions, volunteers, a metrics summary.

None of these return message text; transcripts go through ``assignments.read_transcript``,
which checks rights and audits the read.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat import cards
from app.chat.models import ChatSession, Message
from app.chat.repository import in_queue
from app.core.config import Settings
from app.core.db import utcnow
from app.routing import dispatch, schemas
from app.routing.accounts import Principal
from app.routing.claims import LIVE_STATUSES
from app.routing.models import Assignment, Volunteer
from app.routing.worker import queue_counts
from app.triage.types import Level


async def queue_listing(
    db: AsyncSession,
    settings: Settings,
    *,
    urgency: int | None,
    language: str | None,
    limit: int,
) -> schemas.QueueListing:
    now = utcnow()
    wanted = dispatch.session_language(language) if language else None
    items: list[schemas.QueueItem] = []
    for position, waiting in enumerate(
        await dispatch.waiting_sessions(db, settings, limit=1000), 1
    ):
        if urgency is not None and waiting.urgency != urgency:
            continue
        if wanted is not None and waiting.language != wanted:
            continue
        items.append(
            schemas.QueueItem(
                session_id=waiting.id,
                urgency=Level(waiting.urgency).name,
                urgency_value=waiting.urgency,
                signals=waiting.signals,
                waited_s=round(waiting.waited_s(now), 1),
                language=waiting.language,
                position=position,
                effective_priority=round(dispatch.priority_of(waiting, now, settings), 1),
            )
        )
        if len(items) >= limit:
            break
    return schemas.QueueListing(counts=await queue_counts(db), items=items)


def summary(session: ChatSession, volunteer_id: uuid.UUID | None) -> schemas.SessionSummary:
    return schemas.SessionSummary(
        session_id=session.id,
        status=session.status,
        urgency=Level(session.urgency).name,
        urgency_value=session.urgency,
        signals=list(session.signals or []),
        locale=session.locale,
        waiting_since=session.waiting_since,
        last_seq=session.last_seq,
        volunteer_id=volunteer_id,
    )


def transcript(messages: list[Message]) -> list[schemas.TranscriptMessage]:
    out = []
    for m in messages:
        shown, card = cards.wire_text(m.kind, m.text)
        out.append(
            schemas.TranscriptMessage(
                seq=m.seq,
                sender=m.sender,
                text=shown,
                sent_at=m.sent_at,
                kind=m.kind,
                level=m.level,
                signals=m.signals,
                resource=card,
            )
        )
    return out


async def holder_of(db: AsyncSession, session_id: uuid.UUID) -> uuid.UUID | None:
    return await db.scalar(
        select(Assignment.volunteer_id).where(
            Assignment.session_id == session_id, Assignment.status == "active"
        )
    )


async def live_sessions(db: AsyncSession, principal: Principal) -> schemas.SessionList:
    """Supervisors: every live session. Volunteers: the ones offered to or held by them."""
    holders = select(Assignment.session_id, Assignment.volunteer_id).where(
        Assignment.status == "active"
    )
    held = {row.session_id: row.volunteer_id for row in (await db.execute(holders)).all()}
    # A waiting session whose visitor never spoke is not in the queue; listing it would let a
    # flood of drive-by hellos bury the people who did ask for help.
    query = select(ChatSession).where(
        ChatSession.status.in_(LIVE_STATUSES),
        or_(ChatSession.status != "waiting", in_queue()),
    )
    if not principal.is_supervisor:
        mine = select(Assignment.session_id).where(
            Assignment.volunteer_id == principal.id, Assignment.status.in_(("offered", "active"))
        )
        query = query.where(ChatSession.id.in_(mine))
    rows = (
        await db.scalars(query.order_by(ChatSession.urgency.desc(), ChatSession.waiting_since))
    ).all()
    return schemas.SessionList(sessions=[summary(s, held.get(s.id)) for s in rows])


async def volunteer_status(db: AsyncSession, volunteer: Volunteer) -> schemas.VolunteerStatus:
    rows = (
        await db.execute(
            select(Assignment.session_id, Assignment.status).where(
                Assignment.volunteer_id == volunteer.id,
                Assignment.status.in_(("offered", "active")),
            )
        )
    ).all()
    return schemas.VolunteerStatus(
        volunteer_id=volunteer.id,
        name=volunteer.name,
        role=volunteer.role,
        languages=list(volunteer.languages),
        capacity=volunteer.capacity,
        load=volunteer.load,
        presence=volunteer.presence,
        last_heartbeat_at=volunteer.last_heartbeat_at,
        sessions=[r.session_id for r in rows if r.status == "active"],
        offers=[r.session_id for r in rows if r.status == "offered"],
    )


async def volunteers(db: AsyncSession) -> schemas.VolunteerList:
    rows = (
        await db.scalars(
            select(Volunteer).where(Volunteer.revoked_at.is_(None)).order_by(Volunteer.name)
        )
    ).all()
    return schemas.VolunteerList(volunteers=[await volunteer_status(db, v) for v in rows])


async def metrics_summary(db: AsyncSession) -> schemas.MetricsSummary:
    now = utcnow()
    oldest = await db.execute(
        select(ChatSession.urgency, func.min(ChatSession.waiting_since))
        .where(in_queue())
        .group_by(ChatSession.urgency)
    )
    longest = {level.name: 0.0 for level in Level}
    for urgency, since in oldest.all():
        if since is not None:
            longest[Level(urgency).name] = round((now - since).total_seconds(), 1)
    by_status: dict[str, int] = defaultdict(int)
    for status, count in (
        await db.execute(
            select(ChatSession.status, func.count())
            .where(ChatSession.status.in_(LIVE_STATUSES))
            .group_by(ChatSession.status)
        )
    ).all():
        by_status[status] = int(count)
    presence: dict[str, int] = {"online": 0, "away": 0, "offline": 0}
    free = 0
    for v in (await db.scalars(select(Volunteer).where(Volunteer.revoked_at.is_(None)))).all():
        presence[v.presence] = presence.get(v.presence, 0) + 1
        if v.presence == "online":
            free += max(0, v.capacity - v.load)
    pending = await db.scalar(
        select(func.count()).select_from(Assignment).where(Assignment.status == "offered")
    )
    return schemas.MetricsSummary(
        queue=await queue_counts(db),
        longest_wait_s=longest,
        sessions_by_status=dict(by_status),
        volunteers_by_presence=presence,
        free_slots_online=free,
        offers_pending=int(pending or 0),
    )
