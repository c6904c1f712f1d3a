"""Escalation's SQL: which sessions are unanswered, which handoff speaks for a session, the
locks each dialect needs. Services call these; they hold no policy of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatSession
from app.core.db import dialect_of, take_write_lock
from app.domain import handoff as handoff_states
from app.domain import session as session_states
from app.domain.machine import values
from app.escalation.errors import HandoffNotFound
from app.escalation.models import OPEN_HANDOFF_STATUSES, Handoff, HandoffAttempt
from app.escalation.partners import Partner, PartnersConfig
from app.escalation.policy import Policy, awaiting_answer
from app.routing.models import Assignment
from app.triage.types import Level

# Sessions software escalates on its own: nobody is talking with them yet. A warm transfer
# (``transferring``) counts only once nobody holds it any more: until the other volunteer
# accepts, the current one is still in the chat (see ``unanswered``).
UNANSWERED = values(session_states.UNANSWERED)
# Sessions a volunteer may be in the chat of: the in-chat path, not a clock.
HELD = values(session_states.HELD)
# Sessions a person may still be handed off from.
LIVE = values(session_states.LIVE)
# Rows that stood down because a volunteer was (or got) there: if the session is unanswered
# again later (released, requeued), it needs a clock of its own.
STOOD_DOWN = values(handoff_states.STOOD_DOWN)


NO_SYNC: dict[str, Any] = {"synchronize_session": False}


async def write_first(db: AsyncSession) -> None:
    await take_write_lock(db, Handoff)


async def lock_session(db: AsyncSession, session_id: uuid.UUID) -> ChatSession | None:
    query = select(ChatSession).where(ChatSession.id == session_id)
    if dialect_of(db) == "postgresql":
        query = query.with_for_update()
    else:
        await write_first(db)
    return (await db.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()


async def open_handoff(db: AsyncSession, session_id: uuid.UUID) -> Handoff | None:
    return await db.scalar(
        select(Handoff)
        .where(Handoff.session_id == session_id, Handoff.status.in_(OPEN_HANDOFF_STATUSES))
        .execution_options(populate_existing=True)
    )


def holds(session_id: Any) -> Any:
    """A volunteer is in the chat: an active assignment (during a warm transfer, the one who
    offered it on, until the other accepts)."""
    return exists().where(Assignment.session_id == session_id, Assignment.status == "active")


def unanswered() -> Any:
    return ChatSession.status.in_(UNANSWERED) & ~(
        (ChatSession.status == "transferring") & holds(ChatSession.id)
    )


async def is_unanswered(db: AsyncSession, session: ChatSession) -> bool:
    held = session.status == "transferring" and bool(await db.scalar(select(holds(session.id))))
    return awaiting_answer(session.status, held=held)


def escalated_before(session_id: Any) -> Any:
    """A handoff that still speaks for the session: open, or ended in a way that leaves it to
    people (undeliverable and failed keep it top of the queue with supervisors alerted; a
    fresh clock would only repeat that). Stood-down rows do not count."""
    return (Handoff.session_id == session_id) & Handoff.status.not_in(STOOD_DOWN)


async def sessions_to_escalate(db: AsyncSession, policy: Policy, *, limit: int = 100) -> list[Any]:
    """Unanswered sessions at or above the escalation level that have never escalated (or only
    while a volunteer was there), or whose urgency rose above their open (still scheduled)
    handoff's level."""
    never = (
        select(ChatSession.id, ChatSession.urgency)
        .where(
            unanswered(),
            ChatSession.urgency >= policy.min_level,
            ~exists().where(escalated_before(ChatSession.id)),
        )
        .limit(limit)
    )
    rose = (
        select(ChatSession.id, ChatSession.urgency)
        .join(Handoff, Handoff.session_id == ChatSession.id)
        .where(Handoff.status == "scheduled", ChatSession.urgency > Handoff.level)
        .limit(limit)
    )
    return [*(await db.execute(never)).all(), *(await db.execute(rose)).all()]


async def chats_turned_imminent(db: AsyncSession, *, limit: int = 100) -> list[uuid.UUID]:
    """Chats a volunteer holds (``active``, or mid warm transfer and still theirs) that reached
    ``imminent`` without ever escalating at that level (a session that escalated before it was
    answered already had its safety message, and the volunteer took it knowing)."""
    return list(
        (
            await db.scalars(
                select(ChatSession.id)
                .where(
                    or_(
                        ChatSession.status == "active",
                        (ChatSession.status == "transferring") & holds(ChatSession.id),
                    ),
                    ChatSession.urgency >= int(Level.imminent),
                    ~exists().where(
                        Handoff.session_id == ChatSession.id,
                        Handoff.level >= int(Level.imminent),
                    ),
                )
                .limit(limit)
            )
        ).all()
    )


async def any_open_handoff(db: AsyncSession) -> bool:
    """Whether any handoff is still on its way (scheduled, delivering, awaiting the partner)."""
    found = await db.scalar(select(exists().where(Handoff.status.in_(OPEN_HANDOFF_STATUSES))))
    return bool(found)


async def get_handoff(db: AsyncSession, handoff_id: uuid.UUID) -> Handoff:
    handoff = await db.get(Handoff, handoff_id)
    if handoff is None:
        raise HandoffNotFound("no such handoff")
    return handoff


async def partners_of(db: AsyncSession, handoff: Handoff) -> set[str]:
    """Partners this handoff was sent to: only they may call back about it."""
    names = set(
        (
            await db.scalars(
                select(HandoffAttempt.partner).where(
                    HandoffAttempt.handoff_id == handoff.id,
                    HandoffAttempt.partner.is_not(None),
                    HandoffAttempt.outcome != "breaker_open",
                )
            )
        ).all()
    )
    if handoff.partner:
        names.add(handoff.partner)
    return {n for n in names if n}


async def attempts_of(db: AsyncSession, handoff_id: uuid.UUID) -> Sequence[HandoffAttempt]:
    return (
        await db.scalars(
            select(HandoffAttempt)
            .where(HandoffAttempt.handoff_id == handoff_id)
            .order_by(HandoffAttempt.number, HandoffAttempt.id)
        )
    ).all()


async def session_locale(db: AsyncSession, session_id: uuid.UUID) -> str | None:
    return await db.scalar(select(ChatSession.locale).where(ChatSession.id == session_id))


def partner_for(partners: PartnersConfig | None, name: str | None) -> Partner | None:
    return None if partners is None else partners.by_name(name)
