"""Visitor sessions: open, resume, status changes, erasure, transcript reads.

Services add and flush but never commit: the caller's transaction is the unit of work. Storing
messages lives in :mod:`app.chat.committer` (it batches many messages into one transaction).

Every function that writes begins its transaction with a write (an INSERT, or an UPDATE that
locks the row) and then reads. On Postgres that is the row lock; on SQLite it takes the
database write lock up front, so a transaction never has to upgrade a read snapshot (which
SQLite refuses with "database is locked" instead of waiting).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record_event
from app.bus import Bus
from app.chat import events
from app.chat.errors import InvalidResumeToken, SessionNotFound
from app.chat.models import ChatSession, Message
from app.core.db import utcnow
from app.core.security import digest_secret
from app.triage import Level


class SessionStatus(StrEnum):
    waiting = "waiting"
    offered = "offered"
    active = "active"
    transferring = "transferring"
    handed_off = "handed_off"
    closed = "closed"
    abandoned = "abandoned"


TERMINAL_STATUSES = frozenset({SessionStatus.closed, SessionStatus.abandoned})
OPEN_STATUSES = frozenset(set(SessionStatus) - TERMINAL_STATUSES)
# A visitor who dropped is given up on only from these states (never while handed off).
ABANDONABLE_STATUSES = (SessionStatus.waiting, SessionStatus.active)

_NO_SYNC: dict[str, Any] = {"synchronize_session": False}


def new_resume_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def in_queue() -> ColumnElement[bool]:
    """The sessions the queue is made of — routed, offered, counted in positions and depths.

    Waiting, and the visitor has spoken: a hello alone is not yet a request for help, and a
    flood of them must not put anyone behind anybody (SPEC §9). ``high`` and above are always
    in, whatever else is true of the row: nothing may ever hide an urgent person."""
    return and_(
        ChatSession.status == SessionStatus.waiting.value,
        or_(ChatSession.visitor_spoke_at.is_not(None), ChatSession.urgency >= int(Level.high)),
    )


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
        return self.status not in TERMINAL_STATUSES

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


_SESSION_COLUMNS = (
    ChatSession.id,
    ChatSession.status,
    ChatSession.urgency,
    ChatSession.last_seq,
    ChatSession.waiting_since,
    ChatSession.visitor_seen_at,
    ChatSession.locale,
    ChatSession.visitor_spoke_at,
)


def _view(row: Any) -> SessionView:
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


async def open_session(
    db: AsyncSession,
    bus: Bus,
    *,
    locale: str | None,
    channel: str | None,
    token_ttl_s: float,
) -> tuple[SessionView, str]:
    """A new anonymous session in ``waiting``; returns it and the resume token (shown once).

    Nothing is announced: the session joins the queue with its visitor's first message (the
    chat committer announces that), so a hello alone wakes no router and no queue refresh."""
    now = utcnow()
    token = new_resume_token()
    session = ChatSession(
        id=uuid.uuid4(),
        resume_token_hash=digest_secret(token),
        status=SessionStatus.waiting.value,
        urgency=int(Level.none),
        signals=[],
        locale=locale,
        channel=channel,
        last_seq=0,
        created_at=now,
        waiting_since=now,
        updated_at=now,
        visitor_seen_at=now,
        visitor_connected=True,
        token_expires_at=now + timedelta(seconds=token_ttl_s),
    )
    db.add(session)
    await db.flush()
    record_event(
        db,
        actor_type="visitor",
        actor_id=None,
        action="session_opened",
        subject_type="session",
        subject_id=str(session.id),
        details={"status": session.status, "locale": locale, "channel": channel},
    )
    return _view(session), token


async def resume_session(
    db: AsyncSession, bus: Bus, *, token: str, token_ttl_s: float
) -> SessionView:
    """The session a resume token belongs to; the visitor is marked connected and the token's
    expiry slides forward. An abandoned session is reopened (the person came back)."""
    now = utcnow()
    row = (
        await db.execute(
            update(ChatSession)
            .where(
                ChatSession.resume_token_hash == digest_secret(token),
                ChatSession.token_expires_at > now,
                ChatSession.erased_at.is_(None),
            )
            .values(
                visitor_connected=True,
                visitor_seen_at=now,
                token_expires_at=now + timedelta(seconds=token_ttl_s),
                updated_at=now,
            )
            .returning(*_SESSION_COLUMNS)
            .execution_options(**_NO_SYNC)
        )
    ).one_or_none()
    if row is None:
        raise InvalidResumeToken("unknown or expired resume token")
    view = _view(row)
    if view.status == SessionStatus.abandoned:
        await change_status(
            db,
            bus,
            session_id=view.id,
            to=SessionStatus.waiting,
            reason="visitor_returned",
            actor_type="visitor",
            allowed_from={SessionStatus.abandoned},
        )
        view = await _require(db, view.id)
    return view


async def get_session(db: AsyncSession, session_id: uuid.UUID) -> SessionView | None:
    row = (
        await db.execute(select(*_SESSION_COLUMNS).where(ChatSession.id == session_id))
    ).one_or_none()
    return None if row is None else _view(row)


async def _require(db: AsyncSession, session_id: uuid.UUID) -> SessionView:
    view = await get_session(db, session_id)
    if view is None:
        raise SessionNotFound("no such session")
    return view


async def lock_session(db: AsyncSession, session_id: uuid.UUID) -> SessionView:
    """Row-locks the session for the rest of the transaction (a no-op UPDATE is the portable
    SELECT ... FOR UPDATE: it also takes SQLite's write lock before anything is read)."""
    row = (
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id == session_id)
            .values(updated_at=utcnow())
            .returning(*_SESSION_COLUMNS)
            .execution_options(**_NO_SYNC)
        )
    ).one_or_none()
    if row is None:
        raise SessionNotFound("no such session")
    return _view(row)


async def change_status(
    db: AsyncSession,
    bus: Bus,
    *,
    session_id: uuid.UUID,
    to: SessionStatus,
    reason: str,
    actor_type: str = "system",
    actor_id: str | None = None,
    allowed_from: Collection[str] | None = None,
) -> str | None:
    """Move a session to ``to`` if its current status allows; returns the previous status, or
    None when nothing changed. Audited and announced in the caller's transaction."""
    current = await lock_session(db, session_id)
    if current.status == to or (allowed_from is not None and current.status not in allowed_from):
        return None
    now = utcnow()
    values: dict[str, Any] = {"status": to.value, "updated_at": now}
    if to in TERMINAL_STATUSES:
        values["closed_at"] = now
    elif current.status in TERMINAL_STATUSES:
        values["closed_at"] = None  # reopened (an abandoned visitor came back)
    await db.execute(
        update(ChatSession)
        .where(ChatSession.id == session_id)
        .values(**values)
        .execution_options(**_NO_SYNC)
    )
    record_event(
        db,
        actor_type=actor_type,
        actor_id=actor_id,
        action="session_status_changed",
        subject_type="session",
        subject_id=str(session_id),
        details={
            "from": current.status,
            "to": to.value,
            "reason": reason,
            "urgency": current.urgency,
        },
    )
    await bus.publish_many(events.status_changed(session_id, to.value), db=db)
    return current.status


async def close_by_visitor(db: AsyncSession, bus: Bus, *, session_id: uuid.UUID) -> None:
    await change_status(
        db,
        bus,
        session_id=session_id,
        to=SessionStatus.closed,
        reason="visitor_closed",
        actor_type="visitor",
        allowed_from=OPEN_STATUSES,
    )


async def erase_transcript(db: AsyncSession, bus: Bus, *, session_id: uuid.UUID) -> int:
    """The visitor's ``DELETE``: every message text of the session becomes NULL, the session
    closes and its resume token stops working. The audit log records only that it happened
    (and how many messages), never what was erased. Returns the number of messages erased."""
    await lock_session(db, session_id)
    now = utcnow()
    erased = await db.execute(
        update(Message)
        .where(Message.session_id == session_id, Message.text.is_not(None))
        .values(text=None)
        .execution_options(**_NO_SYNC)
    )
    count = int(getattr(erased, "rowcount", 0) or 0)
    await db.execute(
        update(ChatSession)
        .where(ChatSession.id == session_id)
        .values(erased_at=now, token_expires_at=now, updated_at=now)
        .execution_options(**_NO_SYNC)
    )
    record_event(
        db,
        actor_type="visitor",
        actor_id=None,
        action="transcript_erased",
        subject_type="session",
        subject_id=str(session_id),
        details={"messages": count},
    )
    await bus.publish_many(events.erased(session_id), db=db)
    await change_status(
        db,
        bus,
        session_id=session_id,
        to=SessionStatus.closed,
        reason="erased",
        actor_type="visitor",
        allowed_from=OPEN_STATUSES,
    )
    return count


async def visitor_disconnected(db: AsyncSession, *, session_id: uuid.UUID) -> None:
    """The visitor's last socket (on this instance) closed: the grace period starts now. If they
    are connected elsewhere, that instance's heartbeat sets the flag back within seconds."""
    now = utcnow()
    await db.execute(
        update(ChatSession)
        .where(ChatSession.id == session_id)
        .values(visitor_connected=False, visitor_seen_at=now, updated_at=now)
        .execution_options(**_NO_SYNC)
    )


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


async def stale_visitor_sessions(
    db: AsyncSession, *, grace_s: float, limit: int = 200
) -> list[tuple[uuid.UUID, str]]:
    """Sessions whose visitor has been gone longer than the grace period and that software may
    give up on: never ``high`` or ``imminent`` (those stay for a human, SPEC §3).

    ``visitor_seen_at`` (kept fresh by each instance's heartbeat for its live sockets) decides,
    not ``visitor_connected``: an instance killed outright never got to clear that flag."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    rows = (
        await db.execute(
            select(ChatSession.id, ChatSession.status)
            .where(
                ChatSession.status.in_([s.value for s in ABANDONABLE_STATUSES]),
                ChatSession.visitor_seen_at < cutoff,
                ChatSession.urgency < int(Level.high),
            )
            .limit(limit)
        )
    ).all()
    return [(r.id, r.status) for r in rows]


async def abandon_if_still_stale(
    db: AsyncSession, bus: Bus, *, session_id: uuid.UUID, status: str, grace_s: float
) -> bool:
    """Conditional: another instance, the visitor's return or a rise in urgency since the
    candidate was read all make this a no-op."""
    now = utcnow()
    cutoff = now - timedelta(seconds=grace_s)
    row = (
        await db.execute(
            update(ChatSession)
            .where(
                ChatSession.id == session_id,
                ChatSession.status == status,
                ChatSession.visitor_seen_at < cutoff,
                ChatSession.urgency < int(Level.high),
            )
            .values(status=SessionStatus.abandoned.value, closed_at=now, updated_at=now)
            .returning(ChatSession.urgency)
            .execution_options(**_NO_SYNC)
        )
    ).one_or_none()
    if row is None:
        return False
    record_event(
        db,
        actor_type="system",
        actor_id=None,
        action="session_status_changed",
        subject_type="session",
        subject_id=str(session_id),
        details={
            "from": status,
            "to": SessionStatus.abandoned.value,
            "reason": "visitor_gone",
            "grace_s": grace_s,
            "urgency": row.urgency,
        },
    )
    await bus.publish_many(events.status_changed(session_id, SessionStatus.abandoned.value), db=db)
    return True


def _silent_and_gone(cutoff: datetime) -> ColumnElement[bool]:
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
    rows = await db.scalars(select(ChatSession.id).where(_silent_and_gone(cutoff)).limit(limit))
    return list(rows.all())


async def abandon_silent(
    db: AsyncSession, bus: Bus, *, session_ids: Collection[uuid.UUID], ttl_s: float
) -> list[uuid.UUID]:
    """Abandon those of ``session_ids`` that are still silent and gone (one conditional UPDATE:
    a visitor who came back or spoke meanwhile, or another instance sweeping, makes it a no-op
    for that row). Audited per session; announced on the session's channel only, since these
    sessions were never in the queue."""
    if not session_ids:
        return []
    now = utcnow()
    cutoff = now - timedelta(seconds=ttl_s)
    # Rows another transaction holds (a visitor just back, say) are left for the next sweep
    # rather than waited for while holding the rest.
    free = (
        select(ChatSession.id)
        .where(ChatSession.id.in_(sorted(session_ids)), _silent_and_gone(cutoff))
        .with_for_update(skip_locked=True)
    )
    rows = (
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id.in_(free.scalar_subquery()), _silent_and_gone(cutoff))
            .values(status=SessionStatus.abandoned.value, closed_at=now, updated_at=now)
            .returning(ChatSession.id, ChatSession.urgency)
            .execution_options(**_NO_SYNC)
        )
    ).all()
    done = [row.id for row in rows]
    for session_id, urgency in rows:
        record_event(
            db,
            actor_type="system",
            actor_id=None,
            action="session_status_changed",
            subject_type="session",
            subject_id=str(session_id),
            details={
                "from": SessionStatus.waiting.value,
                "to": SessionStatus.abandoned.value,
                "reason": "never_spoke",
                "silent_ttl_s": ttl_s,
                "urgency": urgency,
            },
        )
    await bus.publish_many(
        [
            event
            for session_id in done
            for event in events.status_changed(
                session_id, SessionStatus.abandoned.value, queue=False
            )
        ],
        db=db,
    )
    return done
