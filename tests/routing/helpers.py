"""Builders for routing tests: sessions and volunteers written straight to the database."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatSession
from app.core.config import Settings
from app.routing import accounts
from app.routing.accounts import IssuedAccount, Principal
from tests.factories import chat_session, save

# Slots a high/imminent chat takes: the shipped default, so tests see what production does.
SLOTS: int = Settings.model_fields["high_urgency_slots"].default


async def add_session(
    db: AsyncSession,
    *,
    urgency: int = 0,
    waited_s: float = 0.0,
    locale: str | None = "en",
    status: str = "waiting",
    now: datetime | None = None,
    spoke: bool = True,
) -> uuid.UUID:
    """A session whose visitor has spoken (so it is in the queue), unless ``spoke=False``."""
    row = chat_session(
        now=now, waited_s=waited_s, spoke=spoke, urgency=urgency, locale=locale, status=status
    )
    return (await save(db, row)).id


async def add_volunteer(
    db: AsyncSession,
    *,
    role: str = "volunteer",
    capacity: int = 2,
    languages: list[str] | None = None,
    online: bool = True,
    name: str | None = None,
) -> tuple[IssuedAccount, Principal]:
    issued = await accounts.create_volunteer(
        db,
        name=name or f"v-{uuid.uuid4().hex[:6]}",
        role=role,
        languages=languages or ["en"],
        capacity=capacity,
        token_ttl_s=3600,
    )
    if online:
        from app.routing import presence

        await presence.go_online(db, issued.id)
    principal = await accounts.authenticate(db, issued.token)
    return issued, principal


async def hide_other_sessions(db: AsyncSession) -> None:
    """Inside a rolled-back test transaction: close what other tests committed, so that queue
    order and "next" see only this test's sessions (undone when the test ends)."""
    from sqlalchemy import update

    from app.routing.assignments import LIVE_STATUSES

    await db.execute(
        update(ChatSession).where(ChatSession.status.in_(LIVE_STATUSES)).values(status="closed")
    )
