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
6. when the batch made a waiting session routable (its visitor's first message, an urgency
   rise) and a router was given (``route``, the lifespan passes routing's), let it decide and
   record the offer in this same transaction: an imminent message and its offer to a free
   volunteer commit together, with no routing wake-up, lookups and offer transaction after it.
   The session rows are already locked here, so the offer cannot race a second router; any
   failure of that step reruns the batch without it (the routing worker, woken by the same
   commit's queue events, makes the offer then);
7. commit, and only then resolve each sender's future, so an ``ack`` always means committed.

While one batch commits, new messages queue up and share the next commit: at low load a message
commits alone (no added delay), at high load many share one fsync. A second worker (the default)
builds the next batch while the first waits for its fsync; two batches touching the same session
simply serialise on its row lock, so seqs stay gap-free with any number of workers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Final, cast

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import (
    Table,
    bindparam,
    case,
    literal,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import record_event
from app.bus import Bus
from app.bus.base import Notification
from app.chat import commit_plan, commit_reads, commit_sql
from app.chat.commit_cache import ContextCache
from app.chat.commit_fast import SHARED_S, FastStored, OneStatementCommit
from app.chat.commit_plan import NewMessage, Outcome, SessionState, StoredMessage
from app.chat.errors import StoreUnavailable
from app.chat.models import ChatSession, Message
from app.chat.recent import RecentMessages, Staged
from app.chat.service import TERMINAL_STATUSES, MessageView
from app.core.db import UTCDateTime, utcnow
from app.core.metrics import Metrics
from app.triage import Level, TriageResult, assess_many

__all__ = ["MessageCommitter", "NewMessage", "StoredMessage", "Triage"]

log = structlog.get_logger(__name__)

SENDERS: Final = ("visitor", "volunteer", "system")
_ATTEMPTS: Final = 3

_MESSAGES = cast(Table, Message.__table__)
_SESSIONS = cast(Table, ChatSession.__table__)

# Triage of a whole batch in one call: the engine encodes every new text of the batch at once.
Triage = Callable[[Sequence[tuple[str, Sequence[str]]]], list[TriageResult]]
# Offers for the given waiting sessions (their rows locked by the caller), made and announced
# in the caller's transaction; returns what it offered. Routing's, wired in by the lifespan:
# chat does not import routing.
RouteInCommit = Callable[[AsyncSession, Collection[uuid.UUID]], Awaitable[Sequence[object]]]


@dataclass(slots=True)
class _Pending:
    message: NewMessage
    future: asyncio.Future[StoredMessage]


_Outcome = Outcome


@dataclass(frozen=True, slots=True)
class _Batch:
    outcomes: list[_Outcome]
    views: list[tuple[uuid.UUID, MessageView]]
    # Per session: the last_seq the texts are current for, and the recent visitor texts.
    contexts: dict[uuid.UUID, tuple[int, list[str]]]
    # Per session that got only volunteer or system messages: its last_seq before and after.
    # Its visitor texts did not change, so what the cache holds stays current.
    carried: dict[uuid.UUID, tuple[int, int]]
    states: dict[uuid.UUID, SessionState]
    settled: set[uuid.UUID]  # sessions whose row ``states`` shows as this commit leaves it


def _views(rows: Sequence[dict[str, Any]]) -> list[tuple[uuid.UUID, MessageView]]:
    return [
        (
            row["session_id"],
            MessageView(
                seq=row["seq"],
                sender=row["sender"],
                text=row["text"],
                sent_at=row["sent_at"],
                kind=row["kind"],
                client_msg_id=row["client_msg_id"],
                level=row["level"],
                signals=None if row["signals"] is None else tuple(row["signals"]),
            ),
        )
        for row in rows
    ]


class _ResendInBatch(Exception):
    """The locked path's INSERT (ON CONFLICT) met a client_msg_id that is already stored."""


class _RouteFailed(Exception):
    """Offering in the commit failed (a deadlock with a router, a bug): the transaction is
    rolled back and the batch is stored again without it."""


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
        context_cache_sessions: int = 2048,
        triage: Triage = assess_many,
        route: RouteInCommit | None = None,
        one_statement: bool = True,
        one_statement_shared_s: float = SHARED_S,
    ) -> None:
        """``one_statement``: store the messages of conversations under way in one guarded
        statement when this process's memory of their rows allows (app/chat/commit_fast.py;
        Postgres only)."""
        self._sessionmaker = sessionmaker
        self._route = route
        self._bus = bus
        self._metrics = metrics
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._workers = workers
        self._context_size = context_size
        self._triage = triage
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._triage_pool: ThreadPoolExecutor | None = None
        self._accepting = False
        self._last_submit = -math.inf  # time.monotonic()
        # Label lookups resolved once, not per message.
        self._stored_by_sender = {s: metrics.messages.labels(sender=s) for s in SENDERS}
        self._triage_latency = metrics.triage_latency_ms.labels(source="chat")
        self._triage_levels = {
            level: metrics.triage_levels.labels(source="chat", level=level.name) for level in Level
        }
        self._contexts_cache = ContextCache(size=context_cache_sessions, keep=context_size)
        engine = sessionmaker.kw["bind"]
        self._fast = (
            OneStatementCommit(
                engine,
                bus,
                self._contexts_cache,
                remember=context_cache_sessions,
                context_size=context_size,
                shared_s=one_statement_shared_s,
            )
            if one_statement and engine.dialect.name == "postgresql"
            else None
        )
        # Sessions with a batch being committed now, and how many (workers run at once).
        self._in_flight: collections.Counter[uuid.UUID] = collections.Counter()
        self._commits = Counter(
            "beacon_chat_commits",
            "Group commits by path: one guarded statement, the locked transaction, or a guarded "
            "statement that stored nothing (the rows had moved on; the locked path followed)",
            ["path"],
            registry=metrics.registry,
        )
        self._fast_commits = self._commits.labels(path="one_statement")
        self._locked_commits = self._commits.labels(path="locked")
        self._fast_misses = self._commits.labels(path="missed")
        # Just-committed messages, for local sockets to deliver without a query.
        self.recent = RecentMessages()
        self._batch_size = Histogram(
            "beacon_chat_commit_batch_size",
            "Messages per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=metrics.registry,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._accepting = True
        # Triage is CPU work (the encoder); one worker thread keeps it off the event loop, and
        # numpy releases the GIL for the matrix products, so sockets keep being served.
        self._triage_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage")
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
        if self._triage_pool is not None:
            self._triage_pool.shutdown(wait=True)
            self._triage_pool = None

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
        self._last_submit = time.monotonic()
        future: asyncio.Future[StoredMessage] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(message, future))
        return await future

    def talked_within(self, seconds: float) -> bool:
        """Whether a message was sent in the last ``seconds``: conversations are under way
        (new connections then wait their turn under load, app/core/pacing.py)."""
        return time.monotonic() - self._last_submit < seconds

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
        sessions = {p.message.session_id for p in batch}
        self._in_flight.update(sessions)
        try:
            known: dict[tuple[str, tuple[str, ...]], tuple[TriageResult, float]] = {}
            check_duplicates = False
            if self._fast is not None:
                batch, check_duplicates = await self._commit_in_one_statement(batch, known)
                if not batch:
                    return
            await self._commit_locked(batch, known, check_duplicates=check_duplicates)
        finally:
            self._in_flight.subtract(sessions)
            for session_id in sessions:
                if self._in_flight[session_id] <= 0:
                    del self._in_flight[session_id]

    async def _commit_in_one_statement(
        self,
        batch: list[_Pending],
        known: dict[tuple[str, tuple[str, ...]], tuple[TriageResult, float]],
    ) -> tuple[list[_Pending], bool]:
        """Stores what the one-statement path can; returns what is left for the locked path
        and whether that must look for resends first."""
        assert self._fast is not None
        try:
            done = await self._fast.store(
                [p.message for p in batch],
                partial(self._assess_batch, known=known),
                now=utcnow(),
                # In another batch of this process too (the other worker): its commit may
                # move the row under this one; the lock serialises the two.
                contended=lambda session_id: self._in_flight[session_id] > 1,
            )
        except IntegrityError:  # a resend of a stored message: nothing stored; answered there
            return batch, True
        except (DBAPIError, OSError) as exc:  # nothing stored: the statement is atomic
            log.warning("commit_one_statement_failed", error=type(exc).__name__)
            return batch, True
        if done is None:
            return batch, False
        # A statement that stored nothing (every row it remembered had moved on) is a miss.
        (self._fast_commits if done.moved else self._fast_misses).inc()
        self._settle_one_statement(done)
        pairs = [(batch[i], o) for i, o in zip(done.indices, done.plan.outcomes, strict=True)]
        self._resolve(
            [p for p, _ in pairs if p.message.session_id in done.moved],
            [o for p, o in pairs if p.message.session_id in done.moved],
        )
        return [p for p in batch if p.message.session_id not in done.moved], False

    def _settle_one_statement(self, done: FastStored) -> None:
        """What a committed batch teaches the caches and this process's subscribers, for the
        sessions that moved."""
        moved = done.moved
        views = _views([row for row in done.plan.rows if row["session_id"] in moved])
        self.recent.settle(self.recent.stage(views), committed=True)
        contexts = done.plan.contexts(done.states)
        self._contexts_cache.update({k: v for k, v in contexts.items() if k in moved})
        self._contexts_cache.carry(
            {
                session_id: (done.before[session_id], done.states[session_id].last_seq)
                for session_id in moved
                if session_id not in contexts
            }
        )
        assert self._fast is not None
        self._fast.snapshots.remember(done.states, moved)
        self._bus.deliver_committed(
            [event for session_id in sorted(moved) for event in done.events.get(session_id, [])]
        )

    async def _commit_locked(
        self,
        batch: list[_Pending],
        known: dict[tuple[str, tuple[str, ...]], tuple[TriageResult, float]],
        *,
        check_duplicates: bool,
    ) -> None:
        self._locked_commits.inc()
        stored: _Batch | None = None
        error: Exception | None = None
        route = self._route is not None
        attempt = 0
        while attempt < _ATTEMPTS:
            try:
                staged: Staged | None = None
                try:
                    async with self._sessionmaker() as db:
                        async with db.begin():
                            stored = await self._store(
                                db, batch, known, check_duplicates=check_duplicates, route=route
                            )
                            # The bus hints may reach local sockets before COMMIT returns here.
                            staged = self.recent.stage(stored.views)
                        self._remember(stored, staged)
                except BaseException:
                    if staged is not None:
                        self.recent.settle(staged, committed=False)
                    stored = None
                    raise
                break
            except _ResendInBatch:
                # Rolled back; run again with the explicit duplicate check (not a failure).
                check_duplicates = True
            except _RouteFailed as exc:
                # Rolled back; the messages matter, the offer can wait for the routing worker.
                log.warning("route_in_commit_failed", error=type(exc.__cause__).__name__)
                route = False
            except (DBAPIError, OSError) as exc:
                # Deadlock, serialization failure, a dropped connection: all worth a fresh
                # attempt (the transaction rolled back, nothing was stored).
                error = exc
                attempt += 1
                check_duplicates = True
                log.warning(
                    "commit_retry", attempt=attempt, batch=len(batch), error=type(exc).__name__
                )
                await asyncio.sleep(0.005 * 2**attempt)
        if stored is None:
            if len(batch) > 1 and isinstance(error, IntegrityError):
                # Isolate whatever the database refuses so the rest of the batch still commits.
                for pending in batch:
                    await self._commit([pending])
                return
            self._fail(batch, StoreUnavailable("message could not be stored; resend it"))
            return
        self._resolve(batch, stored.outcomes)

    def _resolve(self, batch: Sequence[_Pending], outcomes: Sequence[_Outcome]) -> None:
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, StoredMessage) and not outcome.duplicate:
                self._stored_by_sender[outcome.sender].inc()
            if pending.future.done():  # the sender went away; the message is stored anyway
                continue
            if isinstance(outcome, Exception):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    def _remember(self, stored: _Batch, staged: Staged) -> None:
        """Only committed batches may teach the caches anything."""
        self._contexts_cache.update(stored.contexts)
        self._contexts_cache.carry(stored.carried)
        if self._fast is not None:
            self._fast.snapshots.remember(stored.states, stored.settled)
        self.recent.settle(staged, committed=True)

    @staticmethod
    def _fail(batch: list[_Pending], exc: Exception) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

    def forget(self, session_id: uuid.UUID) -> None:
        """Drop what this process remembers of a session's texts (after an erasure)."""
        self._contexts_cache.forget(session_id)
        if self._fast is not None:
            self._fast.snapshots.forget(session_id)
        self.recent.forget(session_id)

    # -- one transaction ---------------------------------------------------------------------

    async def _store(
        self,
        db: AsyncSession,
        batch: list[_Pending],
        known: dict[tuple[str, tuple[str, ...]], tuple[TriageResult, float]],
        *,
        check_duplicates: bool,
        route: bool,
    ) -> _Batch:
        """The I/O of one batch; every decision in between is app/chat/commit_plan.py's."""
        now = utcnow()
        messages = [p.message for p in batch]
        states = await commit_reads.lock_sessions(db, sorted({m.session_id for m in messages}))
        locked_seqs = {session_id: state.last_seq for session_id, state in states.items()}
        sorting = commit_plan.sort(messages, states, terminal=TERMINAL_STATUSES)
        # Resends of messages committed earlier (by us, by a dead process, by another instance).
        # Looked up only when the fast path (ON CONFLICT in _insert) found one: resends are rare,
        # lookups are not free.
        if check_duplicates and sorting.keys:
            existing = await commit_reads.stored_resends(db, sorting.keys)
            commit_plan.answer_resends(sorting, messages, states, existing)
        triaged = commit_plan.sessions_to_triage(sorting, messages)
        if triaged and self._context_size > 0:
            await self._load_contexts(db, states, triaged)
        assessed = await self._assess_batch(
            commit_plan.triage_inputs(sorting, messages, states, context_size=self._context_size),
            known=known,
        )
        plan = commit_plan.plan(sorting, messages, states, assessed, now=now)
        for audit in plan.audits:
            record_event(
                db,
                actor_type=audit.actor_type,
                actor_id=audit.actor_id,
                action=audit.action,
                subject_type="session",
                subject_id=str(audit.session_id),
                details=audit.details,
            )
        if plan.rows:
            notification = self._bus.stage(plan.events, db)
            await self._insert(db, plan.rows, states, plan.changed, now, notification)
            await self._write_back(db, states, plan.changed, now)
        if route and plan.routable and self._route is not None:
            try:
                await self._route(db, sorted(plan.routable))
            except Exception as exc:
                raise _RouteFailed from exc
        views = _views(plan.rows)
        carried = {
            session_id: (locked_seqs[session_id], states[session_id].last_seq)
            for session_id in plan.changed
            if states[session_id].context is None
        }
        return _Batch(
            outcomes=plan.outcomes,
            views=views,
            contexts=plan.contexts(states),
            carried=carried,
            states=states,
            # As this commit leaves them; an offer made in it may move a routable one on.
            settled=plan.changed - plan.routable,
        )

    async def _insert(
        self,
        db: AsyncSession,
        rows: list[dict[str, Any]],
        states: dict[uuid.UUID, SessionState],
        changed: set[uuid.UUID],
        now: datetime,
        notification: Notification | None,
    ) -> None:
        """The rows, the sessions' new ``last_seq`` and the bus notification: one statement on
        Postgres. A ``client_msg_id`` already stored for that session and sender is skipped by
        ON CONFLICT instead of failing; if that happens the transaction is rolled back and the
        batch rerun with the explicit duplicate check (its seqs would have a gap)."""
        ordered = sorted(changed)
        seqs = [states[session_id].last_seq for session_id in ordered]
        if db.get_bind().dialect.name == "postgresql":
            params: dict[str, Any] = {
                "sent_at": rows[0]["sent_at"],
                **{f"a_{name}": [row[name] for row in rows] for name in commit_sql.INSERT_COLUMNS},
                "a_signals": [
                    None if row["signals"] is None else json.dumps(row["signals"]) for row in rows
                ],
                "ids": ordered,
                "seqs": seqs,
                "now": now,
            }
            statement = commit_sql.STORE
            if notification is not None:
                statement = commit_sql.STORE_AND_NOTIFY
                params["channel"] = notification.channel
                params["payloads"] = notification.payloads
            stored = (await db.execute(statement, params)).one().stored
        else:
            if notification is not None:
                raise RuntimeError("a bus that notifies through Postgres needs Postgres")
            table = _MESSAGES
            stmt = (
                sqlite_insert(table)
                .on_conflict_do_nothing(index_elements=["session_id", "sender", "client_msg_id"])
                .returning(table.c.seq)
            )
            stored = len((await db.execute(stmt, rows)).all())
            await db.execute(
                update(_SESSIONS)
                .where(_SESSIONS.c.id == bindparam("b_id"))
                .values(last_seq=bindparam("b_last_seq"), updated_at=now),
                [{"b_id": sid, "b_last_seq": seq} for sid, seq in zip(ordered, seqs, strict=True)],
            )
        if stored != len(rows):
            raise _ResendInBatch

    async def _write_back(
        self,
        db: AsyncSession,
        states: dict[uuid.UUID, SessionState],
        changed: set[uuid.UUID],
        now: datetime,
    ) -> None:
        """What changes rarely (``last_seq`` went with the INSERT): urgency or signals that
        moved, and the visitor's first message (the wait starts then): one statement for each
        session with either (a first message usually has both: it sets the first signals)."""
        table = _SESSIONS
        for session_id in sorted(changed):
            state = states[session_id]
            values: dict[str, Any] = {}
            if state.dirty:
                values.update(urgency=state.urgency, signals=state.signals)
            if state.joined:
                # The row is locked and had no visitor_spoke_at (that is what `joined` means).
                # The wait starts now, not at the hello: sessions held open in silence must not
                # age their way ahead of people who asked for help before them.
                values.update(
                    visitor_spoke_at=now,
                    waiting_since=case(
                        (table.c.status == "waiting", literal(now, UTCDateTime())),
                        else_=table.c.waiting_since,
                    ),
                )
            if values:
                await db.execute(update(table).where(table.c.id == session_id).values(**values))

    async def _assess_batch(
        self,
        items: Sequence[tuple[int, str, tuple[str, ...]]],
        *,
        known: dict[tuple[str, tuple[str, ...]], tuple[TriageResult, float]],
    ) -> dict[int, tuple[TriageResult, float]]:
        """Triage every visitor message of the batch in one call, off the event loop
        (``items``: :func:`~app.chat.commit_plan.triage_inputs`). The per-message time
        reported is the batch's share. ``known``: results for (text, context) already
        triaged for this batch (by the one-statement attempt), reused and extended here —
        triage is a pure function of them."""
        out = {i: known[(text, ctx)] for i, text, ctx in items if (text, ctx) in known}
        items = [item for item in items if item[0] not in out]
        if not items:
            return out
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(
                self._triage_pool, self._triage, [(text, ctx) for _, text, ctx in items]
            )
        except Exception:
            # Never lose a message to a triage bug, and fail safe: a human must look at it.
            log.exception("triage_failed")
            failed = TriageResult(
                level=Level.moderate, score=0.5, signals=("triage:error",), model_version="error"
            )
            results = [failed] * len(items)
        elapsed_ms = (time.perf_counter() - started) * 1000 / len(items)
        for (i, text, ctx), result in zip(items, results, strict=True):
            self._triage_latency.observe(elapsed_ms)
            self._triage_levels[result.level].inc()
            out[i] = known[(text, ctx)] = (result, elapsed_ms)
        return out

    async def _load_contexts(
        self,
        db: AsyncSession,
        states: dict[uuid.UUID, SessionState],
        session_ids: set[uuid.UUID],
    ) -> None:
        """Each session's recent visitor texts: from this process's cache when it is provably
        current (same ``last_seq`` as the locked row), else from the database."""
        missing = set()
        for session_id in session_ids:
            state = states[session_id]
            if not state.spoke:
                # No visitor message yet (visitor_spoke_at is set by the commit of the first,
                # and the row is locked): nothing to read. Every first message, the one that
                # joins the queue and may be routed in this commit, used to query for nothing.
                state.context = []
                continue
            cached = self._contexts_cache.get(session_id, state.last_seq)
            if cached is None:
                missing.add(session_id)
            else:
                state.context = cached
        if missing:
            loaded = await commit_reads.recent_visitor_texts(db, missing, self._context_size)
            for session_id in missing:
                states[session_id].context = loaded.get(session_id, [])
