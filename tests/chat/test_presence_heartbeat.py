"""The presence heartbeat over real Postgres: this instance's visitors are marked seen in one
statement per chunk; a row another transaction holds is skipped this round (never waited
for), a visitor who left meanwhile is not marked connected again, and other instances'
visitors are not touched."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.bus import InProcessBus
from app.chat.models import ChatSession
from app.chat.presence import VisitorPresence
from app.core.db import create_sessionmaker, transaction, utcnow
from tests.factories import chat_session, holding, save


async def test_heartbeat_marks_this_instances_visitors_and_skips_held_rows(
    engine: AsyncEngine,
) -> None:
    maker = create_sessionmaker(engine)
    now = utcnow()
    old = now - timedelta(seconds=40)
    async with transaction(maker) as db:
        rows = [
            await save(db, chat_session(visitor_seen_at=old, visitor_connected=False))
            for _ in range(4)
        ]
        # Left after the heartbeat read its list: its socket wrote a later time.
        rows.append(
            await save(
                db,
                chat_session(visitor_seen_at=now + timedelta(hours=1), visitor_connected=False),
            )
        )
    here, held, elsewhere, here_too, left = (row.id for row in rows)

    presence = VisitorPresence(maker, InProcessBus(), grace_s=60, sweep_interval_s=60)
    for session_id in (here, held, here_too, left):
        presence.attach(session_id)

    async with holding(engine, held):
        await asyncio.wait_for(presence.heartbeat(), 5)  # never waits for the held row

    async with maker() as db:
        found = {
            row.id: row
            for row in (
                await db.execute(
                    select(
                        ChatSession.id, ChatSession.visitor_connected, ChatSession.visitor_seen_at
                    ).where(ChatSession.id.in_([here, held, elsewhere, here_too, left]))
                )
            ).all()
        }
    connected = {key: row.visitor_connected for key, row in found.items()}
    seen_old = {key: row.visitor_seen_at == old for key, row in found.items()}
    assert connected == {here: True, here_too: True, held: False, elsewhere: False, left: False}
    assert seen_old == {here: False, here_too: False, held: True, elsewhere: True, left: False}

    await presence.heartbeat()  # the next round catches the held one up
    async with maker() as db:
        again = await db.scalar(select(ChatSession.visitor_connected).where(ChatSession.id == held))
    assert again is True
