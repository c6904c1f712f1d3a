"""Rights: who may read or write a session's transcript (every read is audited)."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatSession, Message
from app.core.errors import NotFound
from app.routing.accounts import Principal
from app.routing.claims import audit
from app.routing.errors import NotAssigned
from app.routing.models import Assignment


async def require_access(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, *, write: bool
) -> ChatSession:
    """Supervisors: every session. Volunteers: sessions offered to them (read) or held by them
    (read and write). Anything else is refused, and a session's existence is not revealed."""
    session = await db.scalar(select(ChatSession).where(ChatSession.id == session_id))
    if principal.is_supervisor:
        if session is None:
            raise NotFound("no such session")
        return session
    statuses = ("active",) if write else ("offered", "active")
    mine = await db.scalar(
        select(Assignment.id).where(
            and_(
                Assignment.session_id == session_id,
                Assignment.volunteer_id == principal.id,
                Assignment.status.in_(statuses),
            )
        )
    )
    if session is None or mine is None:
        raise NotAssigned("this session is not offered or assigned to you")
    return session


async def read_transcript(
    db: AsyncSession,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    after_seq: int = 0,
    purpose: str = "transcript",
) -> tuple[ChatSession, list[Message]]:
    """Every read of a transcript is an audited event, in the same transaction as the read."""
    session = await require_access(db, principal, session_id, write=False)
    messages = (
        await db.scalars(
            select(Message)
            .where(Message.session_id == session_id, Message.seq > after_seq)
            .order_by(Message.seq)
        )
    ).all()
    audit(
        db,
        principal,
        "transcript_read",
        session_id,
        after_seq=after_seq,
        count=len(messages),
        purpose=purpose,
    )
    return session, list(messages)
