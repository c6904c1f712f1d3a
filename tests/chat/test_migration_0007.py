"""Migration 0007 (``chat_sessions.visitor_spoke_at``): an upgrade never takes a real visitor
out of the queue, and it goes down and up again, on SQLite and on Postgres."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat.models import ChatSession, Message
from app.core.db import create_engine, utcnow
from app.core.migrate import alembic_config
from tests import pg

BEFORE = "0006_assignment_slots"


async def _session(engine: AsyncEngine, *senders: str) -> uuid.UUID:
    """A waiting session as the code before 0007 wrote it, with one message per sender."""
    session_id = uuid.uuid4()
    created = utcnow() - timedelta(minutes=5)
    async with engine.begin() as conn:
        await conn.execute(
            insert(ChatSession.__table__).values(
                id=session_id,
                resume_token_hash=secrets.token_hex(32),
                status="waiting",
                urgency=0,
                signals=[],
                locale="en",
                last_seq=len(senders),
                created_at=created,
                waiting_since=created,
                updated_at=created,
                visitor_seen_at=created,
                visitor_connected=False,
                token_expires_at=created + timedelta(days=1),
            )
        )
        for seq, sender in enumerate(senders, 1):
            await conn.execute(
                insert(Message.__table__).values(
                    session_id=session_id, seq=seq, sender=sender, text="hi", sent_at=created
                )
            )
    return session_id


async def _round_trip(url: str) -> None:
    config = alembic_config(url)
    await asyncio.to_thread(command.upgrade, config, BEFORE)
    engine = create_engine(url, pool_size=1)
    try:
        spoke = await _session(engine, "visitor")
        silent = await _session(engine)
        only_system = await _session(engine, "system")
        await engine.dispose()
        await asyncio.to_thread(command.upgrade, config, "heads")
        async with engine.connect() as conn:
            rows = dict(
                (
                    await conn.execute(
                        select(ChatSession.id, ChatSession.visitor_spoke_at).where(
                            ChatSession.id.in_([spoke, silent, only_system])
                        )
                    )
                ).all()
            )
            created = await conn.scalar(
                select(ChatSession.created_at).where(ChatSession.id == spoke)
            )
        assert rows == {spoke: created, silent: None, only_system: None}
        await engine.dispose()
        await asyncio.to_thread(command.downgrade, config, BEFORE)
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("chat_sessions")}
            )
        assert "visitor_spoke_at" not in columns
        await engine.dispose()
        await asyncio.to_thread(command.upgrade, config, "heads")
    finally:
        await engine.dispose()


async def test_migration_0007_up_down_up_on_sqlite(tmp_path: Path) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'spoke.db'}")


async def test_migration_0007_up_down_up_on_postgres(pg_server: pg.PgServer) -> None:
    url = await pg.create_database(pg_server.admin_url, prefix="beacon_spoke_migrate")
    try:
        await _round_trip(url)
    finally:
        await pg.drop_database(pg_server.admin_url, url)
