"""Rows for tests, built in one place (dispatch's factories, polar's ``save_fixture``).

A factory returns an unsaved ORM object with sensible defaults, every column overridable;
:func:`save` adds and flushes it in the test's transaction. Tests state only what they care
about::

    session = await save(db, chat_session(urgency=Level.high, waited_s=30))
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.chat.models import ChatSession
from app.core.db import Base, create_sessionmaker, utcnow
from app.domain.session import TERMINAL

T = TypeVar("T", bound=Base)


def chat_session(
    *,
    now: datetime | None = None,
    waited_s: float = 0.0,
    spoke: bool = True,
    **overrides: Any,
) -> ChatSession:
    """A session written straight to the table, in ``waiting`` unless told otherwise.

    ``spoke``: the visitor has said something (so a waiting session is in the queue).
    A status set here is a test's starting point, never a move: the app's moves go through
    ``app.chat.lifecycle.transition``."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "resume_token_hash": secrets.token_hex(32),
        "status": "waiting",
        "urgency": 0,
        "signals": [],
        "locale": "en",
        "last_seq": 0,
        "created_at": now,
        "waiting_since": now - timedelta(seconds=waited_s),
        "updated_at": now,
        "visitor_seen_at": now,
        "visitor_connected": True,
        "visitor_spoke_at": now if spoke else None,
        "token_expires_at": now + timedelta(days=1),
    }
    values.update(overrides)
    if values["status"] in TERMINAL and "closed_at" not in overrides:
        values["closed_at"] = values["created_at"]
    return ChatSession(**values)


async def save(db: AsyncSession, row: T) -> T:
    db.add(row)
    await db.flush()
    return row


@asynccontextmanager
async def holding(
    engine: AsyncEngine, session_id: uuid.UUID, *, nowait: bool = False
) -> AsyncIterator[None]:
    """Another transaction holds ``session_id``'s row lock until the block ends (then rolls
    back). ``nowait``: raise at once if someone else holds it already."""
    db = create_sessionmaker(engine)()
    try:
        await db.begin()
        query = select(ChatSession.id).where(ChatSession.id == session_id)
        await db.execute(query.with_for_update(nowait=nowait))
        yield
    finally:
        await db.rollback()
        await db.close()
