"""Helpers and fixtures for the group committer's tests on Postgres (real commits, fresh
sessions per test): tests/chat/test_committer.py and test_commit_one_statement.py."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.bus import Bus, InProcessBus, PostgresBus
from app.chat.committer import MessageCommitter, Triage
from app.chat.models import Message
from app.chat.service import open_session
from app.core.db import create_engine, create_sessionmaker, transaction
from app.core.metrics import Metrics
from app.triage import Level, TriageResult, assess_many

Factory = Callable[..., Any]


@pytest.fixture
async def committer_factory(
    database_url: str,
) -> AsyncIterator[Factory]:
    made: list[tuple[MessageCommitter, AsyncEngine]] = []

    async def make(
        triage: Triage = assess_many, bus: Bus | None = None, **kwargs: Any
    ) -> MessageCommitter:
        # Each committer gets its own engine: as separate as two server processes.
        engine = create_engine(database_url, pool_size=3)
        committer = MessageCommitter(
            create_sessionmaker(engine), bus or InProcessBus(), Metrics(), triage=triage, **kwargs
        )
        await committer.start()
        made.append((committer, engine))
        return committer

    yield make
    for committer, engine in made:
        await committer.stop()
        await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


async def new_session(sessionmaker: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    async with transaction(sessionmaker) as db:
        view, _ = await open_session(
            db, InProcessBus(), locale="en", channel=None, token_ttl_s=3600
        )
    return view.id


@contextlib.contextmanager
def statements_of(committer: MessageCommitter) -> Iterator[list[str]]:
    """Every statement the committer's own engine sends meanwhile (BEGIN and COMMIT are
    the driver's, not statements)."""
    engine = committer._sessionmaker.kw["bind"].sync_engine
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def calm(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
    return [TriageResult(level=Level.none, score=0.0, signals=(), model_version="t") for _ in items]


def recording(triage: Triage) -> tuple[list[tuple[str, tuple[str, ...]]], Triage]:
    """``triage``, and every (text, context) it was asked about, in order."""
    calls: list[tuple[str, tuple[str, ...]]] = []

    def recorded(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        calls.extend((text, tuple(context)) for text, context in items)
        return triage(items)

    return calls, recorded


async def seqs(engine: AsyncEngine, session_id: uuid.UUID) -> list[tuple[int, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Message.seq, Message.client_msg_id)
            .where(Message.session_id == session_id)
            .order_by(Message.seq)
        )
        return [(r.seq, r.client_msg_id) for r in rows]


@contextlib.asynccontextmanager
async def two_buses(
    database_url: str, engine: AsyncEngine
) -> AsyncIterator[tuple[PostgresBus, PostgresBus]]:
    """Two instances' buses on one private channel: ours publishes, theirs listens."""
    channel = f"beacon_test_{uuid.uuid4().hex[:8]}"
    ours, theirs = (
        PostgresBus(database_url=database_url, engine=engine, pg_channel=channel) for _ in range(2)
    )
    await ours.start()
    await theirs.start()
    try:
        yield ours, theirs
    finally:
        await ours.stop()
        await theirs.stop()
