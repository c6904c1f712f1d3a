"""Pooled connections are checked only after sitting idle (app/core/db.py): a connection the
database dropped while it was idle is replaced before anyone uses it, and a busy pool pays no
ping round trips."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import db as core_db
from app.core.db import create_engine


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return int(pid)


async def _kill(admin: AsyncEngine, pid: int) -> None:
    async with admin.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await conn.commit()


async def test_an_idle_connection_the_database_dropped_is_replaced_unseen(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_db, "IDLE_PING_S", 0.0)  # every returned connection counts as idle
    pooled = create_engine(database_url, pool_size=1)
    try:
        dropped = await _backend_pid(pooled)
        await _kill(engine, dropped)
        # Checked out again: pinged, found dead, replaced; the caller never sees the failure.
        assert await _backend_pid(pooled) != dropped
    finally:
        await pooled.dispose()


async def test_a_busy_connection_is_not_pinged(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within IDLE_PING_S of its last use a connection goes out unchecked: the round trips a
    ping costs are saved, so a connection dropped meanwhile fails its next statement (and the
    pool is invalidated, so the one after it reconnects)."""
    monkeypatch.setattr(core_db, "IDLE_PING_S", 3600.0)
    pooled = create_engine(database_url, pool_size=1)
    try:
        dropped = await _backend_pid(pooled)
        await _kill(engine, dropped)
        with pytest.raises(DBAPIError):
            await _backend_pid(pooled)
        assert await _backend_pid(pooled) != dropped
    finally:
        await pooled.dispose()
