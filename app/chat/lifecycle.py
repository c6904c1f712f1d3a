"""The one writer of ``chat_sessions.status``: :func:`transition` (and its bulk form).

Every move is checked against :data:`app.domain.session.SESSION` before anything is written,
made by one conditional UPDATE (so of two racing movers exactly one sees the row come back),
audited as ``session_status_changed`` in the same transaction, and described by the
:class:`Moved` it returns, whose :meth:`Moved.events` are what the bus must carry. With ``bus``
given they are published inside the caller's transaction (delivered only if it commits);
without it the caller publishes them itself (routing does, after its own checks).

Which columns move with the status lives here too: ``closed_at`` is set on entering a terminal
state and cleared when an abandoned session reopens; ``updated_at`` always.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import SYSTEM, Actor, record
from app.bus import Bus, Event
from app.chat import events
from app.chat.models import ChatSession
from app.core.db import utcnow
from app.core.security import digest_secret
from app.domain.session import SESSION, TERMINAL, SessionStatus
from app.triage.types import Level

_NO_SYNC: dict[str, Any] = {"synchronize_session": False, "populate_existing": True}


@dataclass(frozen=True, slots=True)
class Moved:
    """One session that moved: the row as it is now, and where it came from."""

    session: ChatSession
    previous: SessionStatus
    # False for a session that was never in the queue (a silent drive-by): nothing to refresh.
    queued: bool = True

    @property
    def status(self) -> SessionStatus:
        return SessionStatus(self.session.status)

    def events(self) -> list[Event]:
        return events.status_changed(self.session.id, self.session.status, queue=self.queued)


def new_session(
    *, token: str, locale: str | None, channel: str | None, token_ttl_s: float
) -> ChatSession:
    """A new row in the machine's initial state (the only status written by an INSERT)."""
    return ChatSession(
        **new_session_values(
            token=token, locale=locale, channel=channel, token_ttl_s=token_ttl_s, now=utcnow()
        )
    )


def new_session_values(
    *, token: str, locale: str | None, channel: str | None, token_ttl_s: float, now: datetime
) -> dict[str, Any]:
    """The columns of :func:`new_session`'s row, for a Core INSERT of many (a flood of hellos
    must not pay for an ORM object and a unit of work per session)."""
    return {
        "id": uuid.uuid4(),
        "resume_token_hash": digest_secret(token),
        "status": SESSION.initial.value,
        "urgency": int(Level.none),
        "signals": [],
        "locale": locale,
        "channel": channel,
        "last_seq": 0,
        "created_at": now,
        "waiting_since": now,
        "updated_at": now,
        "visitor_seen_at": now,
        "visitor_connected": True,
        "token_expires_at": now + timedelta(seconds=token_ttl_s),
    }


async def transition(
    db: AsyncSession,
    session_id: uuid.UUID,
    to: SessionStatus,
    *,
    reason: str,
    sources: Collection[str] | None = None,
    actor: Actor = SYSTEM,
    bus: Bus | None = None,
    now: datetime | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    also: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Moved | None:
    """Move one session to ``to`` from any of ``sources`` (default: every state the table lets
    reach ``to``); None if it was elsewhere, or ``where`` no longer holds (someone moved first).

    ``also``: other columns written by the same UPDATE (the urgency a wrap-up assessed)."""
    now = now or utcnow()
    allowed = SESSION.check(SESSION.sources(to) if sources is None else sources, to)
    if len(allowed) == 1:
        (previous,) = allowed
    else:
        # Several sources: the row is locked first (a no-op UPDATE, also SQLite's write lock)
        # so the audit can say where it came from; the move below then cannot lose a race.
        current = await _lock(db, session_id)
        if current is None or current not in allowed:
            return None
        previous = current
    moved = await _write(
        db,
        ChatSession.id == session_id,
        previous,
        to,
        now=now,
        where=where,
        also=also,
    )
    if not moved:
        return None
    _audit(db, moved[0], previous, reason, actor, details)
    if bus is not None:
        await bus.publish_many(moved[0].events(), db=db)
    return moved[0]


async def transition_all(
    db: AsyncSession,
    rows: ColumnElement[bool],
    source: SessionStatus,
    to: SessionStatus,
    *,
    reason: str,
    bus: Bus,
    queued: bool,
    actor: Actor = SYSTEM,
    now: datetime | None = None,
    details: Mapping[str, Any] | None = None,
) -> list[Moved]:
    """The bulk form, for sweeps: every session ``rows`` selects that is in ``source`` moves to
    ``to`` in one UPDATE; each is audited and announced like a single move."""
    now = now or utcnow()
    (previous,) = SESSION.check([source], to)
    moved = await _write(db, rows, previous, to, now=now, queued=queued)
    for one in moved:
        _audit(db, one, previous, reason, actor, details)
    await bus.publish_many([event for one in moved for event in one.events()], db=db)
    return moved


async def _lock(db: AsyncSession, session_id: uuid.UUID) -> SessionStatus | None:
    status = (
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id == session_id)
            .values(updated_at=utcnow())
            .returning(ChatSession.status)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    return None if status is None else SessionStatus(status)


async def _write(
    db: AsyncSession,
    rows: ColumnElement[bool],
    previous: SessionStatus,
    to: SessionStatus,
    *,
    now: datetime,
    where: Sequence[ColumnElement[bool]] = (),
    also: Mapping[str, Any] | None = None,
    queued: bool = True,
) -> list[Moved]:
    """The single statement in the code base that changes a session's status."""
    changes: dict[str, Any] = {"status": to.value, "updated_at": now, **(also or {})}
    if to in TERMINAL:
        changes["closed_at"] = now
    elif previous in TERMINAL:
        changes["closed_at"] = None  # reopened (an abandoned visitor came back)
    result = await db.execute(
        update(ChatSession)
        .where(rows, ChatSession.status == previous.value, *where)
        .values(**changes)
        .returning(ChatSession)
        .execution_options(**_NO_SYNC)
    )
    return [Moved(session, previous, queued) for session in result.scalars().all()]


def _audit(
    db: AsyncSession,
    moved: Moved,
    previous: SessionStatus,
    reason: str,
    actor: Actor,
    details: Mapping[str, Any] | None,
) -> None:
    record(
        db,
        actor,
        "session_status_changed",
        subject_type="session",
        subject_id=str(moved.session.id),
        details={
            "from": previous.value,
            "to": moved.session.status,
            "reason": reason,
            **(details or {}),
            "urgency": moved.session.urgency,
        },
    )


__all__ = ["Moved", "new_session", "transition", "transition_all"]
