"""Visitor sessions: open, resume, status changes, erasure.

Services add and flush but never commit: the caller's transaction is the unit of work. Storing
messages lives in :mod:`app.chat.committer` (it batches many messages into one transaction);
the SQL that only reads lives in :mod:`app.chat.repository`; every status change goes through
:func:`app.chat.lifecycle.transition`.

Every function that writes begins its transaction with a write (an INSERT, or an UPDATE that
locks the row) and then reads. On Postgres that is the row lock; on SQLite it takes the
database write lock up front, so a transaction never has to upgrade a read snapshot (which
SQLite refuses with "database is locked" instead of waiting).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import Event
from app.audit.service import SYSTEM, VISITOR, Actor, record
from app.bus import Bus
from app.chat import events
from app.chat.errors import InvalidResumeToken
from app.chat.lifecycle import new_session, new_session_values, transition, transition_all
from app.chat.models import ChatSession, Message, Whisper
from app.chat.repository import (
    SESSION_COLUMNS,
    MessageView,
    SessionView,
    get_session,
    gone_since,
    in_queue,
    load_messages,
    lock_session,
    silent_and_gone,
    silent_sessions,
    stale_visitor_sessions,
    view,
    visitor_disconnected,
)
from app.core.db import utcnow
from app.core.security import digest_secret
from app.domain.session import TERMINAL, UNFINISHED, SessionStatus

_SESSIONS_TABLE = cast(Table, ChatSession.__table__)
_EVENTS_TABLE = cast(Table, Event.__table__)

# The names other modules imported before the domain core had them (app.domain.session).
TERMINAL_STATUSES = TERMINAL

_NO_SYNC: dict[str, Any] = {"synchronize_session": False}


def new_resume_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


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
    token = new_resume_token()
    session = new_session(token=token, locale=locale, channel=channel, token_ttl_s=token_ttl_s)
    # No flush here: the id is made client-side, so both rows go in the commit's one flush.
    db.add(session)
    record(
        db,
        VISITOR,
        "session_opened",
        subject_type="session",
        subject_id=str(session.id),
        details={"status": session.status, "locale": locale, "channel": channel},
    )
    return view(session), token


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
            .returning(*SESSION_COLUMNS)
            .execution_options(**_NO_SYNC)
        )
    ).one_or_none()
    if row is None:
        raise InvalidResumeToken("unknown or expired resume token")
    found = view(row)
    if found.status == SessionStatus.abandoned:
        found = await _reopen(db, bus, found)
    return found


@dataclass(frozen=True, slots=True)
class NewSession:
    """One hello without a resume token, as :func:`open_sessions` takes it."""

    locale: str | None
    channel: str | None


async def open_sessions(
    db: AsyncSession, requests: Sequence[NewSession], *, token_ttl_s: float
) -> list[tuple[SessionView, str]]:
    """:func:`open_session` for many hellos at once (a group commit's share): one INSERT for
    the sessions and one for their audit records, whatever their number (Core statements: no
    ORM object per row)."""
    now = utcnow()
    opened: list[tuple[SessionView, str]] = []
    rows: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for request in requests:
        token = new_resume_token()
        row = new_session_values(
            token=token,
            locale=request.locale,
            channel=request.channel,
            token_ttl_s=token_ttl_s,
            now=now,
        )
        rows.append(row)
        # The row as the database would return it (nobody has spoken yet).
        opened.append((view(SimpleNamespace(**row, visitor_spoke_at=None)), token))
        audits.append(
            {
                "occurred_at": now,
                "actor_type": VISITOR.type,
                "actor_id": VISITOR.id,
                "action": "session_opened",
                "subject_type": "session",
                "subject_id": str(row["id"]),
                "details": {
                    "status": row["status"],
                    "locale": request.locale,
                    "channel": request.channel,
                },
            }
        )
    if rows:
        await db.execute(insert(_SESSIONS_TABLE), rows)
        await db.execute(insert(_EVENTS_TABLE), audits)
    return opened


async def resume_sessions(
    db: AsyncSession, bus: Bus, *, tokens: Collection[str], token_ttl_s: float
) -> dict[str, SessionView]:
    """:func:`resume_session` for many tokens at once: one UPDATE (rows locked in id order,
    as the chat committer locks them, so the two can never deadlock). Returns the sessions by
    token; a token missing from the result is unknown, expired or erased."""
    by_hash = {digest_secret(token): token for token in tokens}
    now = utcnow()
    live = and_(
        ChatSession.resume_token_hash.in_(sorted(by_hash)),
        ChatSession.token_expires_at > now,
        ChatSession.erased_at.is_(None),
    )
    locked = select(ChatSession.id).where(live).order_by(ChatSession.id).with_for_update()
    rows = (
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id.in_(locked.scalar_subquery()), live)
            .values(
                visitor_connected=True,
                visitor_seen_at=now,
                token_expires_at=now + timedelta(seconds=token_ttl_s),
                updated_at=now,
            )
            .returning(ChatSession.resume_token_hash, *SESSION_COLUMNS)
            .execution_options(**_NO_SYNC)
        )
    ).all()
    found: dict[str, SessionView] = {}
    for row in rows:
        session = view(row)
        if session.status == SessionStatus.abandoned:
            session = await _reopen(db, bus, session)
        found[by_hash[row.resume_token_hash]] = session
    return found


async def _reopen(db: AsyncSession, bus: Bus, session: SessionView) -> SessionView:
    """An abandoned session whose visitor came back waits again; the moved row is the view."""
    moved = await transition(
        db,
        session.id,
        SessionStatus.waiting,
        reason="visitor_returned",
        sources=[SessionStatus.abandoned],
        actor=VISITOR,
        bus=bus,
    )
    return session if moved is None else view(moved.session)


async def session_for_token(db: AsyncSession, session_id: uuid.UUID, token: str) -> SessionView:
    """The session a visitor's REST call names, if their resume token is its token and still
    valid (the same rule as resuming: after an erasure it never is). Wrong session, wrong or
    expired token all look the same, so a token reveals nothing about other sessions."""
    if not token or len(token) > 256:
        raise InvalidResumeToken("unknown or expired resume token")
    row = (
        await db.execute(
            select(*SESSION_COLUMNS).where(
                ChatSession.id == session_id,
                ChatSession.resume_token_hash == digest_secret(token),
                ChatSession.token_expires_at > utcnow(),
                ChatSession.erased_at.is_(None),
            )
        )
    ).one_or_none()
    if row is None:
        raise InvalidResumeToken("unknown or expired resume token")
    return view(row)


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
    moved = await transition(
        db,
        session_id,
        to,
        reason=reason,
        sources=None if allowed_from is None else [s for s in allowed_from if s != to],
        actor=Actor(actor_type, actor_id),
        bus=bus,
    )
    return None if moved is None else moved.previous.value


async def close_by_visitor(db: AsyncSession, bus: Bus, *, session_id: uuid.UUID) -> None:
    await transition(
        db,
        session_id,
        SessionStatus.closed,
        reason="visitor_closed",
        sources=UNFINISHED,
        actor=VISITOR,
        bus=bus,
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
    # Staff notes about the person go with what they wrote (app/chat/models.Whisper).
    await db.execute(
        update(Whisper)
        .where(Whisper.session_id == session_id, Whisper.text.is_not(None))
        .values(text=None)
        .execution_options(**_NO_SYNC)
    )
    await db.execute(
        update(ChatSession)
        .where(ChatSession.id == session_id)
        # The number they chose to share goes too (their consent answers stay, as yes/no).
        .values(erased_at=now, token_expires_at=now, updated_at=now, contact_phone=None)
        .execution_options(**_NO_SYNC)
    )
    record(
        db,
        VISITOR,
        "transcript_erased",
        subject_type="session",
        subject_id=str(session_id),
        details={"messages": count},
    )
    await bus.publish_many(events.erased(session_id), db=db)
    await transition(
        db,
        session_id,
        SessionStatus.closed,
        reason="erased",
        sources=UNFINISHED,
        actor=VISITOR,
        bus=bus,
    )
    return count


async def abandon_if_still_stale(
    db: AsyncSession, bus: Bus, *, session_id: uuid.UUID, status: str, grace_s: float
) -> bool:
    """Conditional: another instance, the visitor's return or a rise in urgency since the
    candidate was read all make this a no-op."""
    now = utcnow()
    moved = await transition(
        db,
        session_id,
        SessionStatus.abandoned,
        reason="visitor_gone",
        sources=[status],
        actor=SYSTEM,
        bus=bus,
        now=now,
        where=gone_since(now - timedelta(seconds=grace_s)),
        details={"grace_s": grace_s},
    )
    return moved is not None


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
    locked = (
        select(ChatSession.id)
        .where(ChatSession.id.in_(sorted(session_ids)), silent_and_gone(cutoff))
        .with_for_update(skip_locked=True)
    )
    moved = await transition_all(
        db,
        ChatSession.id.in_(locked.scalar_subquery()) & silent_and_gone(cutoff),
        SessionStatus.waiting,
        SessionStatus.abandoned,
        reason="never_spoke",
        bus=bus,
        queued=False,
        now=now,
        details={"silent_ttl_s": ttl_s},
    )
    return [one.session.id for one in moved]


__all__ = [
    "TERMINAL_STATUSES",
    "MessageView",
    "NewSession",
    "SessionStatus",
    "SessionView",
    "abandon_if_still_stale",
    "abandon_silent",
    "change_status",
    "close_by_visitor",
    "erase_transcript",
    "get_session",
    "in_queue",
    "load_messages",
    "lock_session",
    "open_session",
    "open_sessions",
    "resume_session",
    "resume_sessions",
    "session_for_token",
    "silent_sessions",
    "stale_visitor_sessions",
    "visitor_disconnected",
]
