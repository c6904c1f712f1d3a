"""What the visitor is owed: the safety message and handoff notices, recorded on the handoff
row and sent by the clock loop through the chat committer with a deterministic
``client_msg_id``, so each is sent once even across a crash."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatSession
from app.core.db import utcnow
from app.escalation.alerts import audit
from app.escalation.models import Handoff
from app.escalation.repository import NO_SYNC
from app.escalation.templates import MessageKind

# Automatic escalation's two opening messages: the usual one, and the one for a chat a
# volunteer already holds.
SAFETY_KINDS = frozenset({MessageKind.safety, MessageKind.safety_in_chat})


@dataclass(frozen=True, slots=True)
class Owed:
    handoff_id: uuid.UUID
    session_id: uuid.UUID
    kind: MessageKind
    locale: str | None
    partner: str | None

    @property
    def client_msg_id(self) -> str:
        # Deterministic: a resend after a crash is recognised by the committer, never doubled.
        return f"esc-{self.kind.value}-{self.handoff_id}"[:64]


async def owed_messages(db: AsyncSession, *, limit: int = 100) -> list[Owed]:
    rows = (
        await db.execute(
            select(
                Handoff.id,
                Handoff.session_id,
                Handoff.trigger,
                Handoff.safety_sent_at,
                Handoff.notice_due,
                Handoff.partner,
                ChatSession.locale,
            )
            .join(ChatSession, ChatSession.id == Handoff.session_id)
            .where(
                ((Handoff.safety_sent_at.is_(None)) & (Handoff.trigger.in_(("auto", "in_chat"))))
                | Handoff.notice_due.is_not(None)
            )
            .order_by(Handoff.created_at)
            .limit(limit)
        )
    ).all()
    owed: list[Owed] = []
    for r in rows:
        if r.safety_sent_at is None:
            kind = MessageKind.safety_in_chat if r.trigger == "in_chat" else MessageKind.safety
            owed.append(Owed(r.id, r.session_id, kind, r.locale, r.partner))
        elif r.notice_due is not None:
            owed.append(Owed(r.id, r.session_id, MessageKind(r.notice_due), r.locale, r.partner))
    return owed


async def message_sent(
    db: AsyncSession, owed: Owed, *, seq: int | None, now: datetime | None = None
) -> None:
    """Record that ``owed`` reached the transcript (``seq``), or could not (session over)."""
    now = now or utcnow()
    if owed.kind in SAFETY_KINDS:
        await db.execute(
            update(Handoff)
            .where(Handoff.id == owed.handoff_id, Handoff.safety_sent_at.is_(None))
            .values(safety_sent_at=now, updated_at=now)
            .execution_options(**NO_SYNC)
        )
    else:
        await db.execute(
            update(Handoff)
            .where(Handoff.id == owed.handoff_id, Handoff.notice_due == owed.kind.value)
            .values(notice_due=None, updated_at=now)
            .execution_options(**NO_SYNC)
        )
    audit(
        db,
        "safety_message_sent" if owed.kind in SAFETY_KINDS else "handoff_notice_sent",
        owed.session_id,
        handoff_id=str(owed.handoff_id),
        kind=owed.kind.value,
        seq=seq,
    )
