"""Supervision of a live chat (issue 14, SPEC §1): observe silently, whisper to the volunteer,
join the chat. Every one of these is an audit event on the session, with the supervisor's id
and never any text.

* **Observe** is silent and per socket: nothing is stored but the audit rows
  (``supervision_observe_started`` / ``_ended``); the supervisor's socket receives the session's
  messages as a holder's does (app/routing/live.py). Neither the visitor nor the volunteer is
  told.
* **Whisper**: a note between staff, stored in ``whispers`` (app/chat/models.Whisper), never in
  ``messages``: the visitor's transcript, replay and the partner's transcript all read
  ``messages`` only. Announced on the session's channel as a ``whisper`` hint with an id; staff
  sockets load it, the visitor's ignores the kind.
* **Join** is visible: a ``session_supervisors`` row, an audit row, and a system line in the
  transcript (``kind: "supervisor_join"``). Only then may a supervisor who does not hold the
  chat write into it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import Bus, session_channel
from app.bus.events import WhisperStored, encode
from app.chat.committer import MessageCommitter, NewMessage
from app.chat.models import ChatSession, Whisper
from app.core.db import dialect_of, transaction, utcnow
from app.core.errors import NotFound
from app.domain.session import LIVE
from app.routing.access import require_access
from app.routing.accounts import Principal
from app.routing.claims import audit
from app.routing.errors import NotJoined, SessionNotLive, SupervisorsOnly
from app.routing.models import Assignment, SessionSupervisor

JOINED_KIND: Final = "supervisor_join"  # messages.kind is 16 characters
# What the visitor reads when a supervisor joins: reviewed text per language, never generated.
JOINED_TEXT: Final = {
    "en": "A supervisor has joined this chat to help.",
    "es": "Un supervisor se ha unido a este chat para ayudar.",
}


def joined_text(locale: str | None) -> str:
    language = (locale or "en").replace("_", "-").split("-")[0].lower()
    return JOINED_TEXT.get(language, JOINED_TEXT["en"])


def require_supervisor(principal: Principal) -> None:
    if not principal.is_supervisor:
        raise SupervisorsOnly("supervisors only")


async def live_session(
    db: AsyncSession, session_id: uuid.UUID, *, lock: bool = False
) -> ChatSession:
    query = select(ChatSession).where(ChatSession.id == session_id)
    if lock and dialect_of(db) == "postgresql":
        query = query.with_for_update()
    session = await db.scalar(query)
    if session is None:
        raise NotFound("no such session")
    if session.status not in LIVE:
        raise SessionNotLive(f"the session is {session.status}")
    return session


async def observe(db: AsyncSession, principal: Principal, session_id: uuid.UUID) -> ChatSession:
    require_supervisor(principal)
    session = await live_session(db, session_id)
    audit(db, principal, "supervision_observe_started", session_id)
    return session


def stop_observing(db: AsyncSession, principal: Principal, session_id: uuid.UUID) -> None:
    audit(db, principal, "supervision_observe_ended", session_id)


async def holds(db: AsyncSession, principal: Principal, session_id: uuid.UUID) -> bool:
    found = await db.scalar(
        select(Assignment.id).where(
            Assignment.session_id == session_id,
            Assignment.volunteer_id == principal.id,
            Assignment.status == "active",
        )
    )
    return found is not None


async def has_joined(db: AsyncSession, principal: Principal, session_id: uuid.UUID) -> bool:
    found = await db.scalar(
        select(SessionSupervisor.session_id).where(
            SessionSupervisor.session_id == session_id,
            SessionSupervisor.supervisor_id == principal.id,
        )
    )
    return found is not None


async def require_writer(db: AsyncSession, principal: Principal, session_id: uuid.UUID) -> None:
    """Who may write into the visitor's chat: the volunteer holding it, or a supervisor who
    holds it or has joined it."""
    if not principal.is_supervisor:
        await require_access(db, principal, session_id, write=True)
        return
    await require_access(db, principal, session_id, write=False)
    if not (await holds(db, principal, session_id) or await has_joined(db, principal, session_id)):
        raise NotJoined("join the chat first: the visitor is told a supervisor joined")


@dataclass(frozen=True, slots=True)
class StoredWhisper:
    whisper: Whisper
    duplicate: bool


async def whisper(
    db: AsyncSession,
    bus: Bus,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    client_msg_id: str,
    text: str,
) -> StoredWhisper:
    """Supervisors on any live chat; a volunteer on a chat they hold (to answer). A resend with
    the same ``client_msg_id`` returns the stored whisper and announces nothing."""
    await require_access(db, principal, session_id, write=not principal.is_supervisor)
    await live_session(db, session_id)
    existing = await _whisper_by_key(db, principal, session_id, client_msg_id)
    if existing is not None:
        return StoredWhisper(existing, duplicate=True)
    row = Whisper(
        session_id=session_id,
        author_id=principal.actor_id,
        author_role=principal.role,
        client_msg_id=client_msg_id,
        text=text,
        sent_at=utcnow(),
    )
    try:
        async with db.begin_nested():
            db.add(row)
            await db.flush()
    except IntegrityError:
        # The same resend, committed by another connection meanwhile.
        raced = await _whisper_by_key(db, principal, session_id, client_msg_id)
        if raced is None:
            raise
        return StoredWhisper(raced, duplicate=True)
    audit(db, principal, "whisper_sent", session_id, whisper_id=row.id)
    event = WhisperStored(str(session_id), row.id)
    await bus.publish_many([(session_channel(session_id), encode(event))], db=db)
    return StoredWhisper(row, duplicate=False)


async def _whisper_by_key(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, client_msg_id: str
) -> Whisper | None:
    return await db.scalar(
        select(Whisper).where(
            Whisper.session_id == session_id,
            Whisper.author_id == principal.actor_id,
            Whisper.client_msg_id == client_msg_id,
        )
    )


async def load_whisper(db: AsyncSession, session_id: uuid.UUID, whisper_id: int) -> Whisper | None:
    return await db.scalar(
        select(Whisper).where(Whisper.id == whisper_id, Whisper.session_id == session_id)
    )


async def whispers_of(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID, *, after_id: int = 0
) -> list[Whisper]:
    """Staff with a right to the transcript (supervisors; the volunteer it is offered to or
    held by). A read of staff notes about a person is audited like a transcript read."""
    await require_access(db, principal, session_id, write=False)
    rows = list(
        (
            await db.scalars(
                select(Whisper)
                .where(Whisper.session_id == session_id, Whisper.id > after_id)
                .order_by(Whisper.id)
            )
        ).all()
    )
    audit(db, principal, "whispers_read", session_id, after_id=after_id, count=len(rows))
    return rows


async def replay_whispers(
    db: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> list[Whisper]:
    """The staff notes of a chat a socket has just started to hold or watch (its access was
    checked by whatever made it hold the chat): a volunteer who reconnects, or takes over a
    chat, must not lose the supervisor's guidance. Audited like a transcript read when there
    is something to read."""
    rows = list(
        (
            await db.scalars(
                select(Whisper).where(Whisper.session_id == session_id).order_by(Whisper.id)
            )
        ).all()
    )
    if rows:
        audit(db, principal, "whispers_read", session_id, after_id=0, count=len(rows))
    return rows


async def join(db: AsyncSession, principal: Principal, session_id: uuid.UUID) -> ChatSession:
    """Record the join (once per supervisor and chat; asking again changes nothing)."""
    require_supervisor(principal)
    session = await live_session(db, session_id)
    if not await has_joined(db, principal, session_id):
        db.add(
            SessionSupervisor(session_id=session_id, supervisor_id=principal.id, joined_at=utcnow())
        )
        await db.flush()
        audit(db, principal, "supervisor_joined", session_id)
    return session


@dataclass(frozen=True, slots=True)
class Joined:
    session_id: uuid.UUID
    seq: int  # the visitor-visible ``supervisor_joined`` line


async def run_join(
    sessionmaker: async_sessionmaker[AsyncSession],
    committer: MessageCommitter,
    principal: Principal,
    session_id: uuid.UUID,
) -> Joined:
    """The join as an edge runs it (socket frame, REST): the row and its audit commit first,
    then the system line goes through the group committer (its own transaction, which locks
    the session row: it must not wait on a transaction of ours). The line's dedup key is per
    supervisor, so a retry after a failure in between writes it once."""
    async with transaction(sessionmaker) as db:
        session = await join(db, principal, session_id)
        locale = session.locale
    stored = await committer.submit(
        NewMessage(
            session_id=session_id,
            sender="system",
            text=joined_text(locale),
            client_msg_id=f"joined-{principal.id}",
            sender_id=principal.actor_id,
            kind=JOINED_KIND,
        )
    )
    return Joined(session_id=session_id, seq=stored.seq)
