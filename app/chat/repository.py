"""The chat domain's SQL: what the queue is, how it is ordered, and reading sessions and
messages. Dialect differences live here (``epoch_seconds``), not in the services.

Status writes are not here: :mod:`app.chat.lifecycle` is their one writer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    bindparam,
    case,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.functions import FunctionElement

from app.chat.errors import SessionNotFound
from app.chat.models import ChatSession, Message
from app.core.db import UTCDateTime, dialect_of, utcnow
from app.domain.machine import values
from app.domain.priority import level_step_s
from app.domain.session import ABANDONABLE, TERMINAL, SessionStatus
from app.triage.types import Level

_NO_SYNC: dict[str, Any] = {"synchronize_session": False}


def in_queue() -> ColumnElement[bool]:
    """The sessions the queue is made of — routed, offered, counted in positions and depths.

    Waiting, and the visitor has spoken: a hello alone is not yet a request for help, and a
    flood of them must not put anyone behind anybody (SPEC §9). ``high`` and above are always
    in, whatever else is true of the row: nothing may ever hide an urgent person."""
    return and_(
        ChatSession.status == SessionStatus.waiting.value,
        or_(ChatSession.visitor_spoke_at.is_not(None), ChatSession.urgency >= int(Level.high)),
    )


class epoch_seconds(FunctionElement[float]):  # noqa: N801 - SQL function naming
    """Seconds since 1970 of a timestamp column, on Postgres and SQLite alike."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds, "postgresql")
def _epoch_pg(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


def queue_order(
    urgency: ColumnElement[int] | QueryableAttribute[int],
    waiting_since: ColumnElement[datetime] | QueryableAttribute[datetime],
    *,
    ceiling_s: float,
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """ORDER BY terms equivalent to sorting by ``app.domain.priority.effective_priority``
    descending (the same rule, so the database can sort the queue)."""
    high = int(Level.high)
    tier = case((urgency >= high, urgency), else_=literal(0)).desc()
    offset = case((urgency >= high, literal(0.0)), else_=urgency * level_step_s(ceiling_s))
    effective_since = (epoch_seconds(waiting_since) - offset).asc()
    return tier, effective_since


@dataclass(frozen=True, slots=True)
class SessionView:
    id: uuid.UUID
    status: str
    urgency: int
    last_seq: int
    waiting_since: datetime
    visitor_seen_at: datetime
    locale: str | None
    visitor_spoke_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def queueable(self) -> bool:
        """Whether, when waiting, this session counts in the queue (see :func:`in_queue`)."""
        return self.visitor_spoke_at is not None or self.urgency >= Level.high


@dataclass(frozen=True, slots=True)
class MessageView:
    seq: int
    sender: str
    text: str | None
    sent_at: datetime
    kind: str | None
    client_msg_id: str | None
    # Triage, for staff frames only (the visitor's frames never carry it). Set by the committer
    # on what it keeps in memory; None where a reader did not load it.
    level: int | None = None
    signals: tuple[str, ...] | None = None


SESSION_COLUMNS = (
    ChatSession.id,
    ChatSession.status,
    ChatSession.urgency,
    ChatSession.last_seq,
    ChatSession.waiting_since,
    ChatSession.visitor_seen_at,
    ChatSession.locale,
    ChatSession.visitor_spoke_at,
)


def view(row: Any) -> SessionView:
    return SessionView(
        id=row.id,
        status=row.status,
        urgency=row.urgency,
        last_seq=row.last_seq,
        waiting_since=row.waiting_since,
        visitor_seen_at=row.visitor_seen_at,
        locale=row.locale,
        visitor_spoke_at=row.visitor_spoke_at,
    )


async def get_session(db: AsyncSession, session_id: uuid.UUID) -> SessionView | None:
    row = (
        await db.execute(select(*SESSION_COLUMNS).where(ChatSession.id == session_id))
    ).one_or_none()
    return None if row is None else view(row)


async def require_session(db: AsyncSession, session_id: uuid.UUID) -> SessionView:
    found = await get_session(db, session_id)
    if found is None:
        raise SessionNotFound("no such session")
    return found


async def lock_session(db: AsyncSession, session_id: uuid.UUID) -> SessionView:
    """Row-locks the session for the rest of the transaction (a no-op UPDATE is the portable
    SELECT ... FOR UPDATE: it also takes SQLite's write lock before anything is read)."""
    row = (
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id == session_id)
            .values(updated_at=utcnow())
            .returning(*SESSION_COLUMNS)
            .execution_options(**_NO_SYNC)
        )
    ).one_or_none()
    if row is None:
        raise SessionNotFound("no such session")
    return view(row)


async def visitor_disconnected(db: AsyncSession, *, session_id: uuid.UUID) -> None:
    """The visitor's last socket (on this instance) closed: the grace period starts now. If they
    are connected elsewhere, that instance's heartbeat sets the flag back within seconds."""
    await visitors_disconnected(db, [session_id])


async def visitors_disconnected(db: AsyncSession, session_ids: Sequence[uuid.UUID]) -> None:
    """:func:`visitor_disconnected` for many sessions in one statement, locking the rows in id
    order as every other writer of several sessions does (or skips what is held)."""
    now = utcnow()
    ids = sorted(set(session_ids))
    if dialect_of(db) == "postgresql":
        # One array parameter: the statement is the same whatever the batch size (compiled
        # once), and no per-id parameter is coerced.
        await db.execute(_PG_LEFT, {"now": now, "ids": ids})
        return
    await db.execute(
        update(ChatSession)
        .where(ChatSession.id.in_(ids))
        .values(visitor_connected=False, visitor_seen_at=now, updated_at=now)
        .execution_options(**_NO_SYNC)
    )


# The rows are locked first, in id order, as resumes and the chat committer lock them: a plain
# UPDATE locks in whatever order its plan visits the rows (heap order under a sequential or
# bitmap scan), and a leave and a resume over the same sessions then deadlocked (seen in the
# Postgres log of an earlier round; each deadlock stalls both batches for deadlock_timeout).
_PG_LEFT = text(
    "WITH locked AS MATERIALIZED (SELECT id FROM chat_sessions "
    "WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE) "
    "UPDATE chat_sessions SET visitor_connected = false, visitor_seen_at = :now, "
    "updated_at = :now WHERE id IN (SELECT id FROM locked)"
).bindparams(bindparam("now", type_=UTCDateTime()))


async def load_messages(
    db: AsyncSession,
    session_id: uuid.UUID,
    *,
    after_seq: int,
    upto_seq: int | None = None,
    limit: int = 500,
) -> list[MessageView]:
    """Messages with ``after_seq < seq <= upto_seq``, in order (at most ``limit``)."""
    query = select(
        Message.seq,
        Message.sender,
        Message.text,
        Message.sent_at,
        Message.kind,
        Message.client_msg_id,
    ).where(Message.session_id == session_id, Message.seq > after_seq)
    if upto_seq is not None:
        query = query.where(Message.seq <= upto_seq)
    rows = (await db.execute(query.order_by(Message.seq).limit(limit))).all()
    return [
        MessageView(
            seq=r.seq,
            sender=r.sender,
            text=r.text,
            sent_at=r.sent_at,
            kind=r.kind,
            client_msg_id=r.client_msg_id,
        )
        for r in rows
    ]


def gone_since(cutoff: datetime) -> list[ColumnElement[bool]]:
    """The visitor has been away since before ``cutoff`` and software may give up on them:
    never ``high`` or ``imminent`` (those stay for a human, SPEC §3).

    ``visitor_seen_at`` (kept fresh by each instance's heartbeat for its live sockets) decides,
    not ``visitor_connected``: an instance killed outright never got to clear that flag."""
    return [ChatSession.visitor_seen_at < cutoff, ChatSession.urgency < int(Level.high)]


async def stale_visitor_sessions(
    db: AsyncSession, *, grace_s: float, limit: int = 200
) -> list[tuple[uuid.UUID, str]]:
    """Sessions whose visitor has been gone longer than the grace period (see ``gone_since``)."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    rows = (
        await db.execute(
            select(ChatSession.id, ChatSession.status)
            .where(ChatSession.status.in_(values(ABANDONABLE)), *gone_since(cutoff))
            .limit(limit)
        )
    ).all()
    return [(r.id, r.status) for r in rows]


def silent_and_gone(cutoff: datetime) -> ColumnElement[bool]:
    """Never spoke, not in the queue, and the visitor's last socket closed before ``cutoff``.

    ``visitor_connected`` must be false: a person who opened the chat and is still reading or
    finding words is never closed on (only an instance killed outright leaves the flag set, and
    then the grace-period sweep takes over). Never ``high`` or above."""
    return and_(
        ChatSession.status == SessionStatus.waiting.value,
        ChatSession.visitor_spoke_at.is_(None),
        ChatSession.urgency < int(Level.high),
        ChatSession.visitor_connected.is_(False),
        ChatSession.visitor_seen_at < cutoff,
    )


async def silent_sessions(db: AsyncSession, *, ttl_s: float, limit: int = 500) -> list[uuid.UUID]:
    """Sessions whose visitor left without ever speaking, longer than ``ttl_s`` ago."""
    cutoff = utcnow() - timedelta(seconds=ttl_s)
    rows = await db.scalars(select(ChatSession.id).where(silent_and_gone(cutoff)).limit(limit))
    return list(rows.all())
