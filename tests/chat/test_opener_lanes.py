"""The opener's leave lane on its own, over real Postgres: sockets closing share one commit,
and once the lanes are stopped (an instance shutting down, its sockets still closing) a leave
is written alone rather than lost: a visitor left marked connected would never be given up on."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.bus import InProcessBus
from app.chat.models import ChatSession
from app.chat.opener import SessionOpener
from app.chat.repository import visitors_disconnected
from app.chat.service import NewSession
from app.core.db import create_sessionmaker, transaction, utcnow
from tests.factories import holding


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


async def test_leaves_lock_rows_in_id_order_whatever_the_plan(engine: AsyncEngine) -> None:
    """Resumes and the committer lock sessions in id order; leaves must too, or a leave and a
    resume over the same two sessions can deadlock (seen in the Postgres log of an earlier
    round: Postgres breaks it after deadlock_timeout, a second's stall for both batches).

    A sequential scan (what the planner picks on a small table, and a bitmap scan's heap order
    on a large one) visits rows in heap order: ``high`` is made to lie before ``low`` there, so
    a leave that locked in scan order would take ``high`` while it waits for ``low``."""
    opener = SessionOpener(create_sessionmaker(engine), InProcessBus(), token_ttl_s=3600)
    await opener.start()
    try:
        opened = [await opener.open(NewSession(locale="en", channel=None), _nothing) for _ in "ab"]
    finally:
        await opener.stop()
    low, high = sorted(session.id for session, _ in opened)
    async with transaction(create_sessionmaker(engine)) as db:  # low's new version goes last
        await db.execute(
            update(ChatSession).where(ChatSession.id == low).values(visitor_seen_at=utcnow())
        )

    leaving = create_sessionmaker(engine)()
    try:
        await leaving.begin()
        await leaving.execute(text("SET LOCAL enable_indexscan = off"))
        await leaving.execute(text("SET LOCAL enable_bitmapscan = off"))
        async with holding(engine, low):
            leave = asyncio.create_task(visitors_disconnected(leaving, [high, low]))
            await asyncio.sleep(0.5)  # the leave is now waiting for low
            assert not leave.done()
            async with holding(engine, high, nowait=True):  # raises if the leave took high
                pass
        await asyncio.wait_for(leave, 10)
        await leaving.commit()
    finally:
        await leaving.close()
    assert await _connected(engine, [low, high]) == [False, False]
