"""The group commit in one statement, for the messages of a conversation already under way
(SPEC §10: message → ack).

The locked path (app/chat/committer.py) costs four round trips per batch, each one more turn of
the event loop: BEGIN, lock the session rows, the INSERT, COMMIT. Most batches need nothing the
locked rows would tell: the sessions are the ones this process committed last (it remembers the
rows as it left them, app/chat/commit_cache.py), and the plan made from that memory only moves
``last_seq`` — no urgency rise, no new signal, no first message, no audit entry, no offer. Such a
batch is triaged first, with nothing locked, and then stored by ONE guarded statement with no
transaction around it (commit_sql.GUARDED_STORE): a session's messages are stored only if its
row is still exactly what the plan was made from, otherwise that session is left untouched and
its messages go the locked way, which reads the row itself. So the memory is a hint that can be
wrong without harm: the cost of a wrong hint is the statement that stored nothing for it.

A session another instance writes messages in too (its visitor on one instance, its volunteer
on another) would miss every time, one wasted statement per message; once its ``last_seq`` is
found moved on by someone else, a session takes the locked path directly for ``shared_s``. A
status or urgency changed elsewhere (a claim, a close) costs one miss: the locked path that
follows leaves the row remembered again.

A batch is split by session: the sessions that qualify go in the statement, and the others —
not remembered, a refusal, a rise in urgency, a first message, an audited message — take the
locked path right after it, which answers them exactly as before, reusing the triage already
done here. A resend of a stored message fails the whole statement on the unique key (nothing is
stored) and the whole batch goes the locked way.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from app.bus import Bus, Event, session_channel
from app.chat import commit_plan, commit_sql
from app.chat.commit_cache import ContextCache, SnapshotCache
from app.chat.commit_plan import NewMessage, Plan, SessionState
from app.chat.service import TERMINAL_STATUSES
from app.triage import TriageResult

# How long a session that missed (another writer moved its row) takes the locked path directly.
SHARED_S: Final = 60.0

Assess = Callable[
    [Sequence[tuple[int, str, tuple[str, ...]]]], Awaitable[dict[int, tuple[TriageResult, float]]]
]


@dataclass(slots=True)
class FastStored:
    """What one statement stored: the sessions that moved, and the plan and states it stored
    them by (the messages of other sessions were not stored)."""

    moved: set[uuid.UUID]
    plan: Plan
    states: dict[uuid.UUID, SessionState]
    before: dict[uuid.UUID, int]  # last_seq each session had
    indices: list[int]  # the batch's messages the plan is of, in order
    events: dict[uuid.UUID, list[Event]] = field(default_factory=dict)


class OneStatementCommit:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: Bus,
        contexts: ContextCache,
        *,
        remember: int,
        context_size: int,
        shared_s: float = SHARED_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # No BEGIN and no COMMIT: the statement is its own transaction.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._bus = bus
        self._contexts = contexts
        self._context_size = context_size
        self.snapshots = SnapshotCache(remember)
        self._remember = remember
        self._shared_s = shared_s
        self._clock = clock
        # Sessions found outpaced by another writer → when.
        self._shared: OrderedDict[uuid.UUID, float] = OrderedDict()

    def _is_shared(self, session_id: uuid.UUID) -> bool:
        missed_at = self._shared.get(session_id)
        if missed_at is None:
            return False
        if self._clock() - missed_at < self._shared_s:
            return True
        del self._shared[session_id]
        return False

    def _missed(self, session_ids: Iterable[uuid.UUID]) -> None:
        now = self._clock()
        for session_id in session_ids:
            self._shared[session_id] = now
            self._shared.move_to_end(session_id)
        while len(self._shared) > self._remember:
            self._shared.popitem(last=False)

    def _known(
        self, messages: Sequence[NewMessage], contended: Callable[[uuid.UUID], bool]
    ) -> dict[uuid.UUID, SessionState]:
        """Fresh states of the batch's sessions this process remembers (with the context
        their visitor messages need), leaving out the ones it does not and the contended."""
        states: dict[uuid.UUID, SessionState] = {}
        unknown: set[uuid.UUID] = set()
        for message in messages:
            session_id = message.session_id
            if session_id in unknown:
                continue
            state = states.get(session_id)
            if state is None:
                snapshot = self.snapshots.get(session_id)
                if snapshot is None or contended(session_id) or self._is_shared(session_id):
                    unknown.add(session_id)
                    continue
                state = states[session_id] = snapshot.state()
            if message.sender == "visitor" and self._context_size > 0 and state.context is None:
                state.context = self._contexts.get(session_id, state.last_seq)
                if state.context is None:
                    unknown.add(session_id)
                    del states[session_id]
        return states

    async def store(
        self,
        messages: Sequence[NewMessage],
        assess: Assess,
        *,
        now: datetime,
        contended: Callable[[uuid.UUID], bool] = lambda _: False,
    ) -> FastStored | None:
        """Stores in one statement the messages of the batch's sessions that need nothing but
        new seqs; the rest of the batch is left for the locked path. None when no session
        qualifies (nothing was stored). ``contended``: sessions another batch of this process
        is committing too (left out). Raises what the statement raises (nothing was stored
        then either: the statement is atomic), IntegrityError for a resend of a stored one."""
        candidates = set(self._known(messages, contended)) - {
            m.session_id for m in messages if m.audit is not None
        }
        while candidates:
            chosen = [i for i, m in enumerate(messages) if m.session_id in candidates]
            subset = [messages[i] for i in chosen]
            states = self._known(subset, contended)
            sorting = commit_plan.sort(subset, states, terminal=TERMINAL_STATUSES)
            # A refusal read from memory: the row itself decides.
            unfit = {subset[i].session_id for i, o in enumerate(sorting.outcomes) if o is not None}
            before = {session_id: state.last_seq for session_id, state in states.items()}
            assessed = await assess(
                commit_plan.triage_inputs(sorting, subset, states, context_size=self._context_size)
            )
            plan = commit_plan.plan(sorting, subset, states, assessed, now=now)
            unfit |= {audit.session_id for audit in plan.audits} | plan.routable
            unfit |= {session_id for session_id, s in states.items() if s.dirty or s.joined}
            if unfit:
                candidates -= unfit  # planned again without them (triage is remembered)
                continue
            stored = FastStored(
                moved=set(), plan=plan, states=states, before=before, indices=chosen
            )
            by_channel = {session_channel(session_id): session_id for session_id in states}
            for event in plan.events:
                owner = by_channel.get(event[0])
                if owner is None:
                    return None  # an event beyond the session's own channel: not plain
                stored.events.setdefault(owner, []).append(event)
            stored.moved, outpaced = await self._execute(plan, states, before, stored.events, now)
            self._missed(outpaced)
            return stored
        return None

    async def _execute(
        self,
        plan: Plan,
        states: dict[uuid.UUID, SessionState],
        before: dict[uuid.UUID, int],
        events: dict[uuid.UUID, list[Event]],
        now: datetime,
    ) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """(the sessions stored, those another writer has stored messages in)."""
        ordered = sorted(plan.changed)
        params: dict[str, Any] = {
            "sent_at": now,
            **{f"a_{name}": [row[name] for row in plan.rows] for name in commit_sql.INSERT_COLUMNS},
            "a_signals": [
                None if row["signals"] is None else json.dumps(row["signals"]) for row in plan.rows
            ],
            "ids": ordered,
            "expected": [before[session_id] for session_id in ordered],
            "seqs": [states[session_id].last_seq for session_id in ordered],
            "statuses": [states[session_id].status for session_id in ordered],
            "urgencies": [states[session_id].urgency for session_id in ordered],
            "now": now,
        }
        statement = commit_sql.GUARDED_STORE
        payloads: list[str] = []
        payload_sessions: list[uuid.UUID] = []
        channel: str | None = None
        for session_id in ordered:
            notification = self._bus.stage_detached(events.get(session_id, []))
            if notification is not None:
                channel = notification.channel
                payloads += notification.payloads
                payload_sessions += [session_id] * len(notification.payloads)
        if channel is not None:
            statement = commit_sql.GUARDED_STORE_AND_NOTIFY
            params.update(channel=channel, payloads=payloads, payload_sessions=payload_sessions)
        async with self._engine.connect() as conn:
            row = (await conn.execute(statement, params)).one()
        moved = {uuid.UUID(str(session_id)) for session_id in row.moved}
        outpaced = set()
        for found in row.outpaced:
            text_id, _, last_seq = found.partition(":")
            session_id = uuid.UUID(text_id)
            # This process's own commit (the other worker's, settled meanwhile) is no sign of
            # another writer.
            ours = self.snapshots.get(session_id)
            if session_id not in moved and (ours is None or ours.last_seq < int(last_seq)):
                outpaced.add(session_id)
        return moved, outpaced
