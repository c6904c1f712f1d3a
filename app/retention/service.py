"""What the purge removes, and the audit event that says it ran.

The rule is per item and by age, whatever the session's state: a message's text is kept at most
``retention_days`` after it was sent. A conversation lasts minutes to hours, so in practice its
whole transcript goes about ``retention_days`` after it ended (closed, abandoned or handed off);
a session that is somehow still open that long (a ``high`` visitor on the supervisors' list that
nobody wrapped up) loses its oldest lines rather than keeping them forever. That is the promise a
helpline can make to the people who write to it: nothing they wrote is kept past the period.

What goes:

* ``messages.text`` becomes NULL (the row stays: seq stays gap-free, and the level, score,
  signals, model version and times stay as the session's risk history). Replays send ``text``
  as null, as after a visitor's erasure.
* ``whispers.text`` (staff notes on a chat) becomes NULL by the same rule as message text.
* ``chat_sessions.contact_phone`` (a number the visitor chose to share with a hotline partner)
  becomes NULL, and ``handoffs.payload`` (which holds the transcript and number when the visitor
  consented to share them) becomes NULL: both by the session's / handoff's creation time.
* ``dispositions.notes`` becomes NULL: volunteers' free text about the person is transcript-like.
  The disposition code and the risk assessment stay.
* ``triage_requests`` rows are deleted: the partner request log, including the stored answers
  that make ``Idempotency-Key`` replays work (a key reused after the period is a new request).

What stays: sessions (urgency, signals, locale, times, the consent answers), message metadata,
assignments, handoffs and their attempts (status, times), and the append-only ``events``
table, which holds metadata only. The purge itself is one ``retention_purged`` event per run,
with counts.

Each function does one bounded batch in the caller's transaction (short row locks, no long
transaction on a busy table); :mod:`app.retention.worker` loops them. Every statement is
idempotent, so several instances purging at once only share the work (on Postgres the batches
skip rows another instance has locked).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record_event
from app.chat.models import ChatSession, Message, Whisper
from app.core.db import dialect_of, skip_locked, utcnow
from app.escalation.models import Handoff
from app.partners.models import TriageRequest
from app.routing.models import Disposition

_NO_SYNC: dict[str, Any] = {"synchronize_session": False}


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    messages: int = 0
    notes: int = 0
    triage_requests: int = 0
    whispers: int = 0
    contacts: int = 0
    handoff_payloads: int = 0

    def __add__(self, other: PurgeCounts) -> PurgeCounts:
        return PurgeCounts(
            messages=self.messages + other.messages,
            notes=self.notes + other.notes,
            triage_requests=self.triage_requests + other.triage_requests,
            whispers=self.whispers + other.whispers,
            contacts=self.contacts + other.contacts,
            handoff_payloads=self.handoff_payloads + other.handoff_payloads,
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def cutoff_for(retention_days: int, now: datetime | None = None) -> datetime:
    """Anything written before this instant is past the retention period."""
    return (now or utcnow()) - timedelta(days=retention_days)


def _messages_due(cutoff: datetime) -> list[ColumnElement[bool]]:
    # Matches the partial index ix_messages_unpurged_sent_at exactly.
    return [Message.text.is_not(None), Message.sent_at < cutoff]


def _whispers_due(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [Whisper.text.is_not(None), Whisper.sent_at < cutoff]


def _contacts_due(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [ChatSession.contact_phone.is_not(None), ChatSession.created_at < cutoff]


def _payloads_due(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [Handoff.payload.is_not(None), Handoff.created_at < cutoff]


def _notes_due(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [Disposition.notes.is_not(None), Disposition.created_at < cutoff]


def _requests_due(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [TriageRequest.created_at < cutoff]


def _batch(db: AsyncSession, ids: Select[Any], limit: int) -> Select[Any]:
    ids = ids.limit(limit)
    if dialect_of(db) == "postgresql":
        # Another instance purging at the same moment takes other rows instead of waiting.
        ids = ids.with_for_update(**skip_locked(db))
    return ids


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def due(db: AsyncSession, *, cutoff: datetime) -> PurgeCounts:
    """What a purge at ``cutoff`` would remove (``--dry-run``)."""

    async def count(table: Any, conditions: list[ColumnElement[bool]]) -> int:
        return int(await db.scalar(select(func.count()).select_from(table).where(*conditions)) or 0)

    return PurgeCounts(
        messages=await count(Message, _messages_due(cutoff)),
        notes=await count(Disposition, _notes_due(cutoff)),
        triage_requests=await count(TriageRequest, _requests_due(cutoff)),
        whispers=await count(Whisper, _whispers_due(cutoff)),
        contacts=await count(ChatSession, _contacts_due(cutoff)),
        handoff_payloads=await count(Handoff, _payloads_due(cutoff)),
    )


async def purge_message_texts(db: AsyncSession, *, cutoff: datetime, limit: int) -> int:
    """Up to ``limit`` message texts older than ``cutoff`` become NULL; returns how many."""
    ids = _batch(db, select(Message.id).where(*_messages_due(cutoff)), limit)
    result = await db.execute(
        update(Message)
        # Re-checked on the row itself: a concurrent purge or erasure makes this row a no-op.
        .where(Message.id.in_(ids), *_messages_due(cutoff))
        .values(text=None)
        .execution_options(**_NO_SYNC)
    )
    return _rowcount(result)


async def purge_whisper_texts(db: AsyncSession, *, cutoff: datetime, limit: int) -> int:
    ids = _batch(db, select(Whisper.id).where(*_whispers_due(cutoff)), limit)
    result = await db.execute(
        update(Whisper)
        .where(Whisper.id.in_(ids), *_whispers_due(cutoff))
        .values(text=None)
        .execution_options(**_NO_SYNC)
    )
    return _rowcount(result)


async def purge_contacts(db: AsyncSession, *, cutoff: datetime, limit: int) -> int:
    ids = _batch(db, select(ChatSession.id).where(*_contacts_due(cutoff)), limit)
    result = await db.execute(
        update(ChatSession)
        .where(ChatSession.id.in_(ids), *_contacts_due(cutoff))
        .values(contact_phone=None)
        .execution_options(**_NO_SYNC)
    )
    return _rowcount(result)


async def purge_handoff_payloads(db: AsyncSession, *, cutoff: datetime, limit: int) -> int:
    """A handoff's webhook body is needed only while it is delivered (minutes); past the
    period it goes, with any transcript or number the visitor consented to share."""
    ids = _batch(db, select(Handoff.id).where(*_payloads_due(cutoff)), limit)
    result = await db.execute(
        update(Handoff)
        .where(Handoff.id.in_(ids), *_payloads_due(cutoff))
        .values(payload=None)
        .execution_options(**_NO_SYNC)
    )
    return _rowcount(result)


async def purge_disposition_notes(db: AsyncSession, *, cutoff: datetime, limit: int) -> int:
    ids = _batch(db, select(Disposition.id).where(*_notes_due(cutoff)), limit)
    result = await db.execute(
        update(Disposition)
        .where(Disposition.id.in_(ids), *_notes_due(cutoff))
        .values(notes=None)
        .execution_options(**_NO_SYNC)
    )
    return _rowcount(result)


async def delete_triage_requests(db: AsyncSession, *, cutoff: datetime, limit: int) -> int:
    ids = _batch(db, select(TriageRequest.id).where(*_requests_due(cutoff)), limit)
    result = await db.execute(
        delete(TriageRequest)
        .where(TriageRequest.id.in_(ids), *_requests_due(cutoff))
        .execution_options(**_NO_SYNC)
    )
    return _rowcount(result)


def record_run(
    db: AsyncSession,
    *,
    counts: PurgeCounts,
    cutoff: datetime,
    retention_days: int,
    trigger: str,
    completed: bool = True,
) -> None:
    """One audit event per purge run: counts and the cutoff, never what was purged."""
    record_event(
        db,
        actor_type="system",
        actor_id=trigger,
        action="retention_purged",
        subject_type="retention",
        subject_id="transcripts",
        details={
            **counts.as_dict(),
            "cutoff": cutoff.isoformat(),
            "retention_days": retention_days,
            "completed": completed,
        },
    )
