"""The at-risk watch's bulk unstamp never waits for a session another transaction holds (it
would wait while holding every other row it had already locked, in scan order: the deadlock
that resumes and the chat committer avoid by locking in id order). Real Postgres."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.bus import InProcessBus
from app.chat.models import ChatSession
from app.core.db import create_sessionmaker, transaction, utcnow
from app.routing.at_risk import clear_returned
from tests.factories import chat_session, holding, save


async def test_a_held_session_is_left_for_the_next_pass(engine: AsyncEngine) -> None:
    maker = create_sessionmaker(engine)
    now = utcnow()
    lost = now - timedelta(seconds=30)
    async with transaction(maker) as db:
        held, free = [
            await save(db, chat_session(urgency=3, visitor_lost_at=lost, visitor_seen_at=now))
            for _ in range(2)
        ]
        held_id, free_id = held.id, free.id

    async with holding(engine, held_id), transaction(maker) as db:
        cleared = await asyncio.wait_for(clear_returned(db, InProcessBus()), 5)
    assert held_id not in cleared
    assert free_id in cleared

    async with transaction(maker) as db:
        assert held_id in await clear_returned(db, InProcessBus())
        stamps = await db.scalars(
            select(ChatSession.visitor_lost_at).where(ChatSession.id.in_([held_id, free_id]))
        )
        assert list(stamps.all()) == [None, None]
