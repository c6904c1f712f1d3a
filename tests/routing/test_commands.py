"""``routing.commands``: what REST and the volunteer socket both run, without either edge.

Each command runs in the test's transaction (rolled back), publishes in it, and answers with
the session and its status now; refusals carry their stable codes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.bus import InProcessBus, session_channel
from app.chat.models import ChatSession
from app.core.config import Settings
from app.core.metrics import Metrics
from app.routing import commands
from app.routing.errors import NotAssigned, QueueEmpty, SessionTaken
from tests.routing.helpers import add_session, add_volunteer, hide_other_sessions


@pytest.fixture
def ctx(settings: Settings) -> commands.Context:
    return commands.Context(InProcessBus(), settings, Metrics())


async def _status(db: AsyncSession, session_id: object) -> str | None:
    return await db.scalar(
        select(ChatSession.status)
        .where(ChatSession.id == session_id)
        .execution_options(populate_existing=True)
    )


async def test_next_then_transfer_to_queue_then_close(
    db: AsyncSession, ctx: commands.Context
) -> None:
    await hide_other_sessions(db)
    calm = await add_session(db, urgency=1, waited_s=5)
    urgent = await add_session(db, urgency=3, waited_s=1)
    _, me = await add_volunteer(db, capacity=3)

    done = await commands.execute(db, ctx, me, commands.Next())
    assert done == commands.Done(urgent, "active")  # urgency first
    assert await _status(db, calm) == "waiting"

    done = await commands.execute(db, ctx, me, commands.Transfer(urgent))
    assert done == commands.Done(urgent, "waiting")  # neither named: cold, back to the queue
    assert await _status(db, urgent) == "waiting"

    done = await commands.execute(db, ctx, me, commands.Claim(urgent))
    assert done.status == "active"
    done = await commands.execute(
        db, ctx, me, commands.Close(urgent, disposition="supported", risk_level=1, notes=None)
    )
    assert done == commands.Done(urgent, "closed")
    urgency = await db.scalar(select(ChatSession.urgency).where(ChatSession.id == urgent))
    assert urgency == 1


async def test_refusals_have_stable_codes(db: AsyncSession, ctx: commands.Context) -> None:
    await hide_other_sessions(db)
    _, me = await add_volunteer(db)
    _, other = await add_volunteer(db)
    with pytest.raises(QueueEmpty) as empty:
        await commands.execute(db, ctx, me, commands.Next())
    assert empty.value.code == "queue_empty"

    session_id = await add_session(db)
    await commands.execute(db, ctx, me, commands.Claim(session_id))
    with pytest.raises(SessionTaken):
        await commands.execute(db, ctx, other, commands.Claim(session_id))
    with pytest.raises(NotAssigned) as not_yours:
        await commands.execute(db, ctx, other, commands.Release(session_id))
    assert not_yours.value.code == "not_assigned"


async def test_what_changed_is_published_with_the_transaction(
    db: AsyncSession, ctx: commands.Context
) -> None:
    await hide_other_sessions(db)
    session_id = await add_session(db)
    _, me = await add_volunteer(db)
    async with ctx.bus.subscribe(session_channel(session_id)) as heard:
        await commands.execute(db, ctx, me, commands.Claim(session_id))
        # Published with db=: held for the commit (the test's transaction never commits).
        pending = db.sync_session.info["beacon.bus.pending"]
        assert (
            session_channel(session_id),
            {"kind": "status", "session_id": str(session_id), "status": "active"},
        ) in pending
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(heard.get(), timeout=0.05)
