"""Group commit for chat messages (SPEC §3, §10): the one way a message gets a sequence number.

Every message — visitor, volunteer or system — is submitted here and awaited. A worker task
(built in the lifespan) takes whatever is queued, up to ``max_batch``, and stores it all in ONE
transaction:

1. lock the sessions' rows in id order (``SELECT ... ORDER BY id FOR UPDATE`` on Postgres, so
   two instances locking overlapping sets cannot deadlock; a no-op UPDATE on SQLite, which takes
   its write lock);
2. drop resends: a ``client_msg_id`` already stored for that session and sender is answered with
   the ORIGINAL seq (checked *after* the lock, so a concurrent duplicate from another process has
   either committed — and is found — or waits for us);
3. triage each visitor message with the conversation so far (earlier visitor texts from the
   database plus earlier messages of the same batch);
4. insert the messages with ``last_seq + 1, + 2, ...`` and write the new ``last_seq``, urgency
   (max so far, never lowered) and signals back — gap-free because the row is locked;
5. audit every urgency rise, announce every message on the bus inside the transaction;
6. commit, and only then resolve each sender's future, so an ``ack`` always means committed.

While one batch commits, new messages queue up and share the next commit: at low load a message
commits alone (no added delay), at high load many share one fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

import structlog
from prometheus_client import Histogram
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import record_event
from app.bus import Bus, Event
from app.chat import events
from app.chat.errors import SessionClosed, SessionNotFound, StoreUnavailable
from app.chat.models import ChatSession, Message
from app.chat.service import TERMINAL_STATUSES
from app.core.db import transaction, utcnow
from app.core.metrics import Metrics
from app.triage import Level, TriageResult, assess

log = structlog.get_logger(__name__)

SENDERS: Final = ("visitor", "volunteer", "system")
MAX_SESSION_SIGNALS: Final = 100
_ATTEMPTS: Final = 3

Triage = Callable[[str, tuple[str, ...]], TriageResult]


@dataclass(frozen=True, slots=True)
class NewMessage:
    session_id: uuid.UUID
    sender: str  # visitor | volunteer | system
    text: str
    client_msg_id: str | None = None
    sender_id: str | None = None
    kind: str | None = None  # e.g. "safety" for system messages


@dataclass(frozen=True, slots=True)
class StoredMessage:
    session_id: uuid.UUID
    seq: int
    sender: str
    client_msg_id: str | None
    sent_at: datetime
    duplicate: bool  # a resend: nothing new was stored, ``seq`` is the original's
    level: int | None  # the message's own triage level (visitor messages)
    urgency: int  # the session's urgency after this message
    previous_urgency: int

    @property
    def urgency_raised(self) -> bool:
        return self.urgency > self.previous_urgency


@dataclass(slots=True)
class _Pending:
    message: NewMessage
    future: asyncio.Future[StoredMessage]


@dataclass(slots=True)
class _SessionState:
    status: str
    last_seq: int
    urgency: int
    signals: list[str]
    original_urgency: int
    context: list[str] = field(default_factory=list)


_Outcome = StoredMessage | Exception


class _ConnectionProblem(Exception):
    """The database could not be reached: splitting the batch would not help."""


class MessageCommitter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: Bus,
        metrics: Metrics,
        *,
        max_batch: int = 256,
        linger_s: float = 0.0,
        workers: int = 1,
        context_size: int = 10,
        triage: Triage = assess,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._bus = bus
        self._metrics = metrics
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._workers = workers
        self._context_size = context_size
        self._triage = triage
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False
        self._batch_size = Histogram(
            "beacon_chat_commit_batch_size",
            "Messages per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=metrics.registry,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._accepting = True
        self._tasks = [
            asyncio.create_task(self._work(), name=f"chat-committer-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        """Stop accepting, then store everything already submitted before returning."""
        self._accepting = False
        for _ in self._tasks:
            self._queue.put_nowait(None)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- submitting --------------------------------------------------------------------------

    async def submit(self, message: NewMessage) -> StoredMessage:
        """Store one message; returns once it is committed (or was already stored).

        If the caller is cancelled meanwhile, the message is still stored: a resend with the same
        ``client_msg_id`` is then answered with its seq.
        """
        if message.sender not in SENDERS:
            raise ValueError(f"unknown sender {message.sender!r}")
        if not self._accepting:
            raise StoreUnavailable("server is shutting down")
        future: asyncio.Future[StoredMessage] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(message, future))
        return await future

    # -- the worker --------------------------------------------------------------------------

    async def _work(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            if self._linger_s > 0:
                await asyncio.sleep(self._linger_s)
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                await self._commit(batch)
            except Exception:  # a bug here must not kill the committer for everyone
                log.exception("committer_failed", batch=len(batch))
                self._fail(batch, StoreUnavailable("message could not be stored"))

    async def _commit(self, batch: list[_Pending]) -> None:
        self._batch_size.observe(len(batch))
        outcomes: list[_Outcome] | None = None
        error: Exception | None = None
        for attempt in range(_ATTEMPTS):
            try:
                async with transaction(self._sessionmaker) as db:
                    outcomes = await self._store(db, batch)
                break
            except (DBAPIError, OSError) as exc:
                # Deadlock, serialization failure, a duplicate racing in from another instance,
                # a dropped connection: all worth a fresh attempt (rolled back, nothing stored).
                error = exc
                log.warning(
                    "commit_retry", attempt=attempt + 1, batch=len(batch), error=type(exc).__name__
                )
                await asyncio.sleep(0.005 * 2**attempt)
        if outcomes is None:
            if len(batch) > 1 and isinstance(error, IntegrityError):
                # Isolate whatever the database refuses so the rest of the batch still commits.
                for pending in batch:
                    await self._commit([pending])
                return
            self._fail(batch, StoreUnavailable("message could not be stored; resend it"))
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, StoredMessage) and not outcome.duplicate:
                self._metrics.messages.labels(sender=outcome.sender).inc()
            if pending.future.done():  # the sender went away; the message is stored anyway
                continue
            if isinstance(outcome, Exception):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    @staticmethod
    def _fail(batch: list[_Pending], exc: Exception) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

    # -- one transaction ---------------------------------------------------------------------

    async def _store(self, db: AsyncSession, batch: list[_Pending]) -> list[_Outcome]:
        now = utcnow()
        session_ids = sorted({p.message.session_id for p in batch})
        states = await self._lock_sessions(db, session_ids)
        outcomes: list[_Outcome | None] = [None] * len(batch)

        # Refuse what cannot be stored; fold resends within the batch onto their first copy.
        first_of: dict[tuple[uuid.UUID, str, str], int] = {}
        followers: list[tuple[int, int]] = []
        todo: list[int] = []
        for i, pending in enumerate(batch):
            message = pending.message
            state = states.get(message.session_id)
            if state is None:
                outcomes[i] = SessionNotFound("no such session")
                continue
            if state.status in TERMINAL_STATUSES:
                outcomes[i] = SessionClosed("the session is closed")
                continue
            if message.client_msg_id is not None:
                key = (message.session_id, message.sender, message.client_msg_id)
                if key in first_of:
                    followers.append((i, first_of[key]))
                    continue
                first_of[key] = i
            todo.append(i)

        # Resends of messages committed earlier (by us, by a dead process, by another instance).
        if first_of:
            existing = await self._existing(db, list(first_of))
            still_todo = []
            for i in todo:
                message = batch[i].message
                found = existing.get((message.session_id, message.sender, message.client_msg_id))
                if found is None:
                    still_todo.append(i)
                    continue
                state = states[message.session_id]
                outcomes[i] = StoredMessage(
                    session_id=message.session_id,
                    seq=found.seq,
                    sender=message.sender,
                    client_msg_id=message.client_msg_id,
                    sent_at=found.sent_at,
                    duplicate=True,
                    level=found.level,
                    urgency=state.urgency,
                    previous_urgency=state.urgency,
                )
            todo = still_todo

        triaged_sessions = {
            batch[i].message.session_id for i in todo if batch[i].message.sender == "visitor"
        }
        if triaged_sessions and self._context_size > 0:
            for session_id, texts in (await self._contexts(db, triaged_sessions)).items():
                states[session_id].context = texts

        rows: list[dict[str, Any]] = []
        bus_events: list[Event] = []
        for i in todo:
            message = batch[i].message
            state = states[message.session_id]
            state.last_seq += 1
            previous_urgency = state.urgency
            row: dict[str, Any] = {
                "session_id": message.session_id,
                "seq": state.last_seq,
                "sender": message.sender,
                "sender_id": message.sender_id,
                "kind": message.kind,
                "client_msg_id": message.client_msg_id,
                "text": message.text,
                "sent_at": now,
                "level": None,
                "score": None,
                "signals": None,
                "model_version": None,
                "triage_ms": None,
            }
            if message.sender == "visitor":
                result, elapsed_ms = self._assess(message.text, state.context)
                state.context.append(message.text)
                level = int(result.level)
                row.update(
                    level=level,
                    score=result.score,
                    signals=list(result.signals),
                    model_version=result.model_version,
                    triage_ms=elapsed_ms,
                )
                for signal in result.signals:
                    if signal not in state.signals and len(state.signals) < MAX_SESSION_SIGNALS:
                        state.signals.append(signal)
                if level > state.urgency:
                    state.urgency = level
                    record_event(
                        db,
                        actor_type="system",
                        actor_id=None,
                        action="urgency_raised",
                        subject_type="session",
                        subject_id=str(message.session_id),
                        details={
                            "from": previous_urgency,
                            "to": level,
                            "seq": state.last_seq,
                            "signals": list(result.signals),
                            "model_version": result.model_version,
                        },
                    )
                    bus_events += events.urgency_raised(
                        message.session_id,
                        urgency=level,
                        previous=previous_urgency,
                        seq=state.last_seq,
                    )
            rows.append(row)
            bus_events += events.message_stored(
                message.session_id, state.last_seq, message.sender, message.client_msg_id
            )
            outcomes[i] = StoredMessage(
                session_id=message.session_id,
                seq=state.last_seq,
                sender=message.sender,
                client_msg_id=message.client_msg_id,
                sent_at=now,
                duplicate=False,
                level=row["level"],
                urgency=state.urgency,
                previous_urgency=previous_urgency,
            )

        if rows:
            await db.execute(insert(Message), rows)
            changed = {batch[i].message.session_id for i in todo}
            await db.execute(
                update(ChatSession),
                [
                    {
                        "id": session_id,
                        "last_seq": states[session_id].last_seq,
                        "urgency": states[session_id].urgency,
                        "signals": states[session_id].signals,
                        "updated_at": now,
                    }
                    for session_id in sorted(changed)
                ],
            )
            await self._bus.publish_many(bus_events, db=db)

        for i, first in followers:
            original = outcomes[first]
            outcomes[i] = (
                replace(original, duplicate=True)
                if isinstance(original, StoredMessage)
                else original
            )
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    def _assess(self, text: str, context: list[str]) -> tuple[TriageResult, float]:
        started = time.perf_counter()
        try:
            result = self._triage(text, tuple(context[-self._context_size :]))
        except Exception:
            # Never lose a message to a triage bug, and fail safe: a human must look at it.
            log.exception("triage_failed")
            result = TriageResult(
                level=Level.moderate, score=0.5, signals=("triage:error",), model_version="error"
            )
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._metrics.triage_latency_ms.labels(source="chat").observe(elapsed_ms)
        self._metrics.triage_levels.labels(source="chat", level=result.level.name).inc()
        return result, elapsed_ms

    async def _lock_sessions(
        self, db: AsyncSession, session_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, _SessionState]:
        columns = (
            ChatSession.id,
            ChatSession.status,
            ChatSession.last_seq,
            ChatSession.urgency,
            ChatSession.signals,
        )
        query = select(*columns).where(ChatSession.id.in_(session_ids)).order_by(ChatSession.id)
        if db.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        else:
            # SQLite has no row locks: writing first takes the database write lock instead.
            await db.execute(
                update(ChatSession)
                .where(ChatSession.id.in_(session_ids))
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        rows = (await db.execute(query)).all()
        return {
            r.id: _SessionState(
                status=r.status,
                last_seq=r.last_seq,
                urgency=r.urgency,
                signals=list(r.signals or []),
                original_urgency=r.urgency,
            )
            for r in rows
        }

    @staticmethod
    async def _existing(
        db: AsyncSession, keys: list[tuple[uuid.UUID, str, str]]
    ) -> dict[tuple[uuid.UUID, str, str | None], Any]:
        session_ids = sorted({k[0] for k in keys})
        client_ids = sorted({k[2] for k in keys})
        rows = (
            await db.execute(
                select(
                    Message.session_id,
                    Message.sender,
                    Message.client_msg_id,
                    Message.seq,
                    Message.sent_at,
                    Message.level,
                ).where(Message.session_id.in_(session_ids), Message.client_msg_id.in_(client_ids))
            )
        ).all()
        return {(r.session_id, r.sender, r.client_msg_id): r for r in rows}

    async def _contexts(
        self, db: AsyncSession, session_ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, list[str]]:
        """The last ``context_size`` visitor texts of each session, oldest first."""
        recent = (
            select(
                Message.session_id,
                Message.seq,
                Message.text,
                func.row_number()
                .over(partition_by=Message.session_id, order_by=Message.seq.desc())
                .label("recency"),
            )
            .where(
                Message.session_id.in_(sorted(session_ids)),
                Message.sender == "visitor",
                Message.text.is_not(None),
            )
            .subquery()
        )
        rows = (
            await db.execute(
                select(recent.c.session_id, recent.c.text)
                .where(recent.c.recency <= self._context_size)
                .order_by(recent.c.session_id, recent.c.seq)
            )
        ).all()
        contexts: dict[uuid.UUID, list[str]] = defaultdict(list)
        for r in rows:
            contexts[r.session_id].append(r.text)
        return contexts
