"""Who gets which waiting session: eligibility, best volunteer, and one routing pass.

A pass is safe to run on every instance at once: it only ever *proposes* offers, and each one is
made by the conditional UPDATEs in ``app.routing.assignments`` in its own short transaction, so
a lost race just means someone else made that offer first.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.models import Event
from app.bus.base import Bus
from app.chat.models import ChatSession
from app.chat.repository import in_queue
from app.core.config import Settings
from app.core.db import transaction, utcnow
from app.routing import assignments, notify
from app.routing.accounts import normalise_languages
from app.routing.models import Assignment, Volunteer
from app.routing.notices import OfferMade
from app.routing.priority import effective_priority, queue_order
from app.routing.slots import slot_weight
from app.triage.types import Level

log = structlog.get_logger(__name__)


def session_language(locale: str | None) -> str | None:
    if not locale:
        return None
    languages = normalise_languages([locale])
    return languages[0] if languages else None


@dataclass(frozen=True, slots=True)
class Waiting:
    id: uuid.UUID
    urgency: int
    waiting_since: datetime
    language: str | None
    signals: list[str]

    def waited_s(self, now: datetime) -> float:
        return max(0.0, (now - self.waiting_since).total_seconds())

    def any_language(self, now: datetime, fallback_s: float) -> bool:
        """High-urgency people, and anyone who has waited long enough, go to whoever is free."""
        return (
            self.language is None or self.urgency >= Level.high or self.waited_s(now) >= fallback_s
        )


async def waiting_sessions(
    db: AsyncSession,
    settings: Settings,
    *,
    limit: int = 200,
    urgency: int | None = None,
) -> list[Waiting]:
    """Sessions in the queue (:func:`app.chat.service.in_queue`: waiting, and the visitor has
    spoken), most urgent (by effective priority) first."""
    query = select(
        ChatSession.id,
        ChatSession.urgency,
        ChatSession.waiting_since,
        ChatSession.locale,
        ChatSession.signals,
    ).where(in_queue())
    if urgency is not None:
        query = query.where(ChatSession.urgency == urgency)
    query = query.order_by(
        *queue_order(
            ChatSession.urgency, ChatSession.waiting_since, ceiling_s=settings.queue_wait_ceiling_s
        ),
        ChatSession.id,
    ).limit(limit)
    rows = (await db.execute(query)).all()
    return [
        Waiting(
            id=row.id,
            urgency=row.urgency,
            waiting_since=row.waiting_since,
            language=session_language(row.locale),
            signals=list(row.signals or []),
        )
        for row in rows
    ]


def eligible(
    session: Waiting, languages: tuple[str, ...] | list[str], now: datetime, settings: Settings
) -> bool:
    return session.any_language(now, settings.language_fallback_s) or (
        session.language in languages
    )


@dataclass(slots=True)
class Candidate:
    id: uuid.UUID
    languages: list[str]
    free: int
    load: int
    idle_since: datetime


async def available_volunteers(
    db: AsyncSession, settings: Settings, now: datetime
) -> list[Candidate]:
    """Online, heartbeating, not revoked, with a free slot."""
    fresh = now - timedelta(seconds=settings.volunteer_heartbeat_timeout_s)
    rows = (
        await db.scalars(
            select(Volunteer).where(
                Volunteer.presence == "online",
                Volunteer.revoked_at.is_(None),
                Volunteer.token_expires_at > now,
                Volunteer.last_heartbeat_at >= fresh,
                Volunteer.load < Volunteer.capacity,
            )
        )
    ).all()
    return [
        Candidate(
            id=v.id,
            languages=list(v.languages),
            free=v.capacity - v.load,
            load=v.load,
            idle_since=v.idle_since,
        )
        for v in rows
    ]


async def recent_refusals(
    db: AsyncSession, settings: Settings, now: datetime
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(session, volunteer) pairs not to offer again yet: declined or let expire recently.

    A refusal stands only for the urgency the volunteer saw: if the session's urgency rose
    after it (a calm chat turned imminent), the volunteer may be the one free person who can
    help now, so the pair becomes eligible again at once."""
    since = now - timedelta(seconds=settings.offer_decline_cooldown_s)
    rows = (
        await db.execute(
            select(Assignment.session_id, Assignment.volunteer_id, Assignment.responded_at).where(
                Assignment.status.in_(("declined", "expired")), Assignment.responded_at >= since
            )
        )
    ).all()
    if not rows:
        return set()
    rises = await db.execute(
        select(Event.subject_id, func.max(Event.occurred_at))
        .where(
            Event.subject_type == "session",
            Event.action == "urgency_raised",
            Event.occurred_at >= since,
            Event.subject_id.in_({str(row.session_id) for row in rows}),
        )
        .group_by(Event.subject_id)
    )
    last_rise = {subject_id: at for subject_id, at in rises}
    refused: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for row in rows:
        rose_at = last_rise.get(str(row.session_id))
        if rose_at is None or row.responded_at is None or rose_at <= row.responded_at:
            refused.add((row.session_id, row.volunteer_id))
    return refused


def plan_offers(
    queue: list[Waiting],
    volunteers: list[Candidate],
    refused: set[tuple[uuid.UUID, uuid.UUID]],
    now: datetime,
    settings: Settings,
) -> list[tuple[Waiting, Candidate]]:
    """Greedy: the most urgent session first, to the least loaded, longest idle volunteer who
    may take it. Pure, so that the policy is testable without a database.

    Slots are counted as the claim will take them (``assignments.slot_weight``, clamped to what
    is free): a ``high``+ session goes to anyone with a free slot, preferring someone who has
    room for its full weight."""
    plan: list[tuple[Waiting, Candidate]] = []
    for session in queue:
        choices = [
            v
            for v in volunteers
            if v.free > 0
            and (session.id, v.id) not in refused
            and eligible(session, v.languages, now, settings)
        ]
        if not choices:
            continue
        weight = slot_weight(session.urgency, settings.high_urgency_slots)
        best = min(choices, key=lambda v: (v.free < weight, v.load, v.idle_since, v.id))
        taken = min(weight, best.free)
        best.free -= taken
        best.load += taken
        plan.append((session, best))
        if all(v.free <= 0 for v in volunteers):
            break
    return plan


async def route_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, bus: Bus
) -> list[OfferMade]:
    """One pass: expire overdue offers, let urgent chats take the slots they are owed, then
    offer waiting sessions to free volunteers. Each change publishes its notices inside its own
    transaction, so they go out only if it commits."""
    # One transaction for the expiry and the reads (a pass usually changes nothing, and an empty
    # transaction still costs its round trips); a second one only when top-ups moved slots.
    async with transaction(sessionmaker) as db:
        await notify.publish(bus, await assignments.expire_offers(db), db=db)
        owed = await assignments.under_weight(db, high_urgency_slots=settings.high_urgency_slots)
        if not owed:
            now = utcnow()
            volunteers, queue, refused = await _plan_inputs(db, settings, now)
    if owed:
        await _top_up(sessionmaker, settings, owed)
        now = utcnow()
        async with transaction(sessionmaker) as db:
            volunteers, queue, refused = await _plan_inputs(db, settings, now)
    made: list[OfferMade] = []
    for session, volunteer in plan_offers(queue, volunteers, refused, now, settings):
        try:
            async with transaction(sessionmaker) as db:
                offer = await assignments.offer(
                    db,
                    session.id,
                    volunteer.id,
                    timeout_s=settings.offer_timeout_s,
                    high_urgency_slots=settings.high_urgency_slots,
                )
                if offer is not None:
                    await notify.publish(bus, offer.notices(utcnow()), db=db)
        except (IntegrityError, DBAPIError) as exc:
            # Another instance won a race the conditional updates could not see (e.g. a
            # deadlock victim): nothing was committed; the next pass retries.
            log.info("offer_race_lost", session_id=str(session.id), error=type(exc).__name__)
            continue
        if offer is not None:
            made.append(offer)
    return made


async def offer_in_commit(
    db: AsyncSession, sessions: Collection[uuid.UUID], *, settings: Settings, bus: Bus
) -> list[OfferMade]:
    """The chat committer's routing step (``MessageCommitter(route=...)``): inside the
    transaction that stored the messages of ``sessions`` (waiting, rows locked by it), offer
    each one that a routing pass would offer now, and announce the offers in that transaction.

    The plan is the routing pass's own (:func:`plan_offers` over the whole queue, most urgent
    first), so a session of this batch only gets a volunteer that nobody ahead of it in the
    queue would get; the others are left to the routing worker, which the same commit wakes.
    With nobody free (the common case under load) it costs one indexed query."""
    now = utcnow()
    volunteers = await available_volunteers(db, settings, now)
    if not volunteers:
        return []
    queue = await waiting_sessions(db, settings)
    if not any(session.id in sessions for session in queue):
        return []
    refused = await recent_refusals(db, settings, now)
    made: list[OfferMade] = []
    for session, volunteer in plan_offers(queue, volunteers, refused, now, settings):
        if session.id not in sessions:
            continue
        offer = await assignments.offer(
            db,
            session.id,
            volunteer.id,
            timeout_s=settings.offer_timeout_s,
            high_urgency_slots=settings.high_urgency_slots,
            now=now,
        )
        if offer is None:
            continue
        await notify.publish(bus, offer.notices(now), db=db)
        log.info(
            "offer_made",
            session_id=str(offer.session_id),
            volunteer_id=str(offer.volunteer_id),
            urgency=offer.urgency,
            in_commit=True,
        )
        made.append(offer)
    return made


async def _plan_inputs(
    db: AsyncSession, settings: Settings, now: datetime
) -> tuple[list[Candidate], list[Waiting], set[tuple[uuid.UUID, uuid.UUID]]]:
    """Free volunteers, the queue and recent refusals (the queue only if someone is free)."""
    volunteers = await available_volunteers(db, settings, now)
    if not volunteers:
        return [], [], set()
    queue = await waiting_sessions(db, settings)
    refused = await recent_refusals(db, settings, now) if queue else set()
    return volunteers, queue, refused


async def _top_up(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    owed: Sequence[assignments.UnderWeight],
) -> int:
    """Before planning: a chat that became ``high``+ (or was clamped) takes the slots it is
    owed while they are free, so the plan below does not hand them out. One transaction per
    assignment; a lost race or deadlock only delays that one to the next pass."""
    added = 0
    for held in owed:
        try:
            async with transaction(sessionmaker) as db:
                added += await assignments.top_up(
                    db, held, high_urgency_slots=settings.high_urgency_slots
                )
        except DBAPIError as exc:
            log.info("top_up_race_lost", assignment_id=held.assignment_id, error=type(exc).__name__)
    return added


def priority_of(session: Waiting, now: datetime, settings: Settings) -> float:
    return effective_priority(
        session.urgency, session.waited_s(now), ceiling_s=settings.queue_wait_ceiling_s
    )
