"""Engine, session factory and the declarative base shared by every domain's models.

Postgres is the system of record; SQLite (aiosqlite) is the embedded default for newcomers. The
column types here paper over the two differences that matter to Beacon: timezone-aware
timestamps and JSON.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Uuid,
    any_,
    bindparam,
    event,
    inspect,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on Postgres; on SQLite, values come back timezone-aware in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a timestamptz column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on Postgres, JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)
    _ping_when_idle(engine)
    return engine


# A pooled connection unused for this long is checked before it is handed out.
IDLE_PING_S = 5.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """``pool_pre_ping`` for connections that sat idle, not for every checkout.

    SQLAlchemy's pre-ping costs three round trips on asyncpg (BEGIN, ``;``, ROLLBACK) before
    every transaction: measured, 12 % of the server's CPU on the imminent path, for connections
    that had been in use a millisecond earlier. A connection idle for ``IDLE_PING_S`` (the
    ones a database restart or a dropped link leaves stale) is still pinged, and replaced if
    dead. One that goes stale while busy fails its next statement instead; SQLAlchemy then
    invalidates the whole pool, so the next transaction of every other connection reconnects,
    and the callers that matter retry (the committer reruns its batch; clients resend)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["beacon.idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("beacon.idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError() from exc


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """The boundary's unit of work: services run inside, the boundary commits or rolls back."""
    async with sessionmaker() as session, session.begin():
        yield session


# -- the two dialects' locking differences, in one place ------------------------------------------


def dialect_of(db: AsyncSession) -> str:
    return db.get_bind().dialect.name


def among(
    db: AsyncSession, column: InstrumentedAttribute[uuid.UUID], ids: list[uuid.UUID]
) -> ColumnElement[bool]:
    """``column IN ids``; on Postgres ``= ANY(array)``, one parameter: the statement text is the
    same for every batch size (prepared once; an IN list is a new text per size, each id bound
    alone). SQLite has no arrays."""
    if dialect_of(db) == "postgresql":
        return column == any_(bindparam("ids", ids, type_=ARRAY(Uuid())))
    return column.in_(ids)


async def take_write_lock(db: AsyncSession, model: type[Base]) -> None:
    """SQLite only: take the database write lock before reading.

    A SQLite transaction that read first and then writes after another writer committed fails
    ("database is locked") instead of waiting; a write first makes it wait for the lock like
    Postgres would. Any UPDATE takes it, even one that matches no row, so this one matches none
    (``model``'s primary key is never the nil UUID). Postgres needs no such thing: its
    conditional UPDATEs re-check after their row locks."""
    if dialect_of(db) != "sqlite":
        return
    (key,) = inspect(model).primary_key
    await db.execute(
        update(model)
        .where(key == uuid.UUID(int=0))
        .values({key.key: key})
        .execution_options(synchronize_session=False)
    )


def skip_locked(db: AsyncSession) -> dict[str, Any]:
    """``with_for_update`` arguments: Postgres skips rows another instance holds (SQLite has
    no row locks, and its write lock already serialises the transaction)."""
    return {"skip_locked": True} if dialect_of(db) == "postgresql" else {}
