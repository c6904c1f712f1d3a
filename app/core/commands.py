"""What every one-shot `beacon` sub-command needs from the database, written once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker
from app.core.migrate import current_revision, head_revision, upgrade_to_head


class DatabaseNotReady(Exception):
    """The configured database is not at the migration head the code expects."""


@asynccontextmanager
async def command_database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A sessionmaker on a database at head. The embedded SQLite default is brought to head first,
    as `beacon serve` does; any other database must have been migrated with `beacon db upgrade`
    (a command never migrates a shared production database behind the operator's back)."""
    if settings.is_sqlite:
        await asyncio.to_thread(upgrade_to_head, settings.database_url)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        revision = await current_revision(engine)
        if revision != head_revision():
            raise DatabaseNotReady(
                f"database is at revision {revision}, not head; run `beacon db upgrade` first"
            )
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()
