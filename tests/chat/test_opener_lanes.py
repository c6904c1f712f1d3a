"""The opener's leave lane on its own, over real Postgres: sockets closing share one commit,
and once the lanes are stopped (an instance shutting down, its sockets still closing) a leave
is written alone rather than lost: a visitor left marked connected would never be given up on."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.bus import InProcessBus
from app.chat.models import ChatSession
from app.chat.opener import SessionOpener
from app.chat.service import NewSession
from app.core.db import create_sessionmaker, transaction


def _nothing(_: uuid.UUID) -> None:
    return None


async def _connected(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[bool]:
    async with transaction(create_sessionmaker(engine)) as db:
        rows = await db.scalars(
            select(ChatSession.visitor_connected).where(ChatSession.id.in_(ids))
        )
        return list(rows.all())


async def test_leaves_share_commits_and_are_written_alone_after_stop(engine: AsyncEngine) -> None:
    opener = SessionOpener(create_sessionmaker(engine), InProcessBus(), token_ttl_s=3600)
    await opener.start()
    opened = await asyncio.gather(
        *(opener.open(NewSession(locale="en", channel=None), _nothing) for _ in range(12))
    )
    ids = [session.id for session, _ in opened]
    assert await _connected(engine, ids) == [True] * 12

    before = opener.commits
    await asyncio.gather(*(opener.leave(session_id) for session_id in ids[:10]))
    assert 1 <= opener.commits - before < 10
    assert sorted(await _connected(engine, ids)) == [False] * 10 + [True] * 2

    await opener.stop()
    for session_id in ids[10:]:
        await opener.leave(session_id)
    assert await _connected(engine, ids) == [False] * 12
