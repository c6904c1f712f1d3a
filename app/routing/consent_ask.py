"""Asking the visitor for consent to share more with a hotline partner (app/chat/consent.py):
the volunteer holding the chat, or a supervisor who holds or joined it (the question is
visible, so whoever asks must be someone the visitor was told about)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import Actor
from app.chat import consent
from app.chat.committer import MessageCommitter, NewMessage
from app.core.db import transaction
from app.routing.accounts import Principal
from app.routing.supervision import require_writer


async def run_ask(
    sessionmaker: async_sessionmaker[AsyncSession],
    committer: MessageCommitter,
    principal: Principal,
    session_id: uuid.UUID,
) -> int:
    """Record that it was asked (audited), then post the question through the group committer
    (its own transaction, after ours: it locks the session row). Returns the question's seq.
    Each ask is a new question (a visitor may be asked again later in a long chat)."""
    async with transaction(sessionmaker) as db:
        await require_writer(db, principal, session_id)
        session = await consent.mark_asked(
            db, Actor(principal.role, principal.actor_id), session_id
        )
        locale = session.locale
    stored = await committer.submit(
        NewMessage(
            session_id=session_id,
            sender="system",
            text=consent.question(locale),
            client_msg_id=f"consent-{uuid.uuid4().hex}",
            sender_id=principal.actor_id,
            kind=consent.KIND,
        )
    )
    return stored.seq
