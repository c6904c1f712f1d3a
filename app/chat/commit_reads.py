"""The group commit's reads inside its transaction (app/chat/committer.py's locked path): the
session rows it locks, the resends already stored, the visitors' recent texts for triage."""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.commit_plan import Existing, SessionState
from app.chat.models import ChatSession, Message
from app.core.db import among, dialect_of, utcnow


async def lock_sessions(
    db: AsyncSession, session_ids: list[uuid.UUID]
) -> dict[uuid.UUID, SessionState]:
    columns = (
        ChatSession.id,
        ChatSession.status,
        ChatSession.last_seq,
        ChatSession.urgency,
        ChatSession.signals,
        ChatSession.visitor_spoke_at,
    )
    query = select(*columns).where(among(db, ChatSession.id, session_ids)).order_by(ChatSession.id)
    if dialect_of(db) == "postgresql":
        query = query.with_for_update()
    else:
        # SQLite has no row locks: writing first takes the database write lock instead.
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id.in_(session_ids))
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    rows = (await db.execute(query)).all()
    return {
        r.id: SessionState(
            status=r.status,
            last_seq=r.last_seq,
            urgency=r.urgency,
            signals=list(r.signals or []),
            spoke=r.visitor_spoke_at is not None,
        )
        for r in rows
    }


async def stored_resends(
    db: AsyncSession, keys: list[tuple[uuid.UUID, str, str]]
) -> dict[tuple[uuid.UUID, str, str | None], Existing]:
    session_ids = sorted({k[0] for k in keys})
    client_ids = sorted({k[2] for k in keys})
    rows = (
        await db.execute(
            select(
                Message.session_id,
                Message.sender,
                Message.client_msg_id,
                Message.seq,
                Message.sent_at,
                Message.level,
            ).where(Message.session_id.in_(session_ids), Message.client_msg_id.in_(client_ids))
        )
    ).all()
    return {
        (r.session_id, r.sender, r.client_msg_id): Existing(
            seq=r.seq, sent_at=r.sent_at, level=r.level
        )
        for r in rows
    }


async def recent_visitor_texts(
    db: AsyncSession, session_ids: set[uuid.UUID], size: int
) -> dict[uuid.UUID, list[str]]:
    """The last ``size`` visitor texts of each session, oldest first."""
    recent = (
        select(
            Message.session_id,
            Message.seq,
            Message.text,
            func.row_number()
            .over(partition_by=Message.session_id, order_by=Message.seq.desc())
            .label("recency"),
        )
        .where(
            Message.session_id.in_(sorted(session_ids)),
            Message.sender == "visitor",
            Message.text.is_not(None),
        )
        .subquery()
    )
    rows = (
        await db.execute(
            select(recent.c.session_id, recent.c.text)
            .where(recent.c.recency <= size)
            .order_by(recent.c.session_id, recent.c.seq)
        )
    ).all()
    contexts: dict[uuid.UUID, list[str]] = defaultdict(list)
    for r in rows:
        contexts[r.session_id].append(r.text)
    return contexts
