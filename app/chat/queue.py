"""What a waiting visitor is told (SPEC §4): their place in the queue and an honest wait estimate.

Order is the effective priority of :mod:`app.domain.priority` (urgency tiers, then aging by
time waited), the same rule routing uses to choose who is offered next, so "position 1" really
is the next person offered to a free volunteer.

Wait estimate — chosen to be honest rather than reassuring: ``null`` until this instance has
seen people leave the queue to a volunteer or a partner hotline; then
``position / (people served per second over the last queue_rate_window_s)``, rounded UP to the
next 30 s. A made-up average handle time would invent a number on a quiet night with nobody
online; this one is null exactly when we do not know.

:class:`QueueMonitor` keeps one ordered snapshot per instance and pushes changed positions to
the sockets that watch them. The snapshot is kept by the events that change the queue: every
payload on the ``queue`` channel (a session joined, changed status, rose in urgency) marks its
session, and the next pass re-reads only the marked rows, one query for all of them, however
many visitors wait. The whole queue is read at start, after a bus resync (hints may have been
lost), and every ``full_refresh_s`` as a safety net; a pass with nothing marked reads nothing
and, while no wait estimate can drift, sends nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import structlog
from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import QUEUE_CHANNEL, Bus, Payload
from app.chat.models import ChatSession
from app.chat.repository import in_queue, queue_order
from app.core.worker import PeriodicWorker
from app.domain.machine import values
from app.domain.priority import level_step_s
from app.domain.session import SERVED
from app.triage.types import Level

log = structlog.get_logger(__name__)

ESTIMATE_GRANULARITY_S: Final = 30
# Statuses that mean "left the queue because someone took them", for the service rate.
SERVED_STATUSES: Final = values(SERVED)
_SNAPSHOT_LIMIT: Final = 20_000
_MIN_RATE_WINDOW_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class QueueInfo:
    position: int | None
    estimated_wait_s: int | None


def estimate_wait_s(position: int, served_per_s: float | None) -> int | None:
    """Seconds until a person at ``position`` (1 = next) is likely answered; None if unknown."""
    if served_per_s is None or served_per_s <= 0 or position < 1:
        return None
    seconds = position / served_per_s
    return max(1, math.ceil(seconds / ESTIMATE_GRANULARITY_S)) * ESTIMATE_GRANULARITY_S


async def waiting_order(db: AsyncSession, *, ceiling_s: float) -> list[tuple[uuid.UUID, int]]:
    """(session id, urgency) of every session in the queue, next-to-be-offered first."""
    rows = (
        await db.execute(
            select(ChatSession.id, ChatSession.urgency)
            .where(in_queue())
            .order_by(
                *queue_order(ChatSession.urgency, ChatSession.waiting_since, ceiling_s=ceiling_s),
                ChatSession.id,
            )
            .limit(_SNAPSHOT_LIMIT)
        )
    ).all()
    return [(r.id, r.urgency) for r in rows]


async def waiting_rows(
    db: AsyncSession, *, ceiling_s: float
) -> Sequence[Row[uuid.UUID, int, datetime]]:
    """What the snapshot keeps of every session in the queue (id, urgency, waiting_since)."""
    rows = await db.execute(
        select(ChatSession.id, ChatSession.urgency, ChatSession.waiting_since)
        .where(in_queue())
        .order_by(
            *queue_order(ChatSession.urgency, ChatSession.waiting_since, ceiling_s=ceiling_s),
            ChatSession.id,
        )
        .limit(_SNAPSHOT_LIMIT)
    )
    return rows.all()


async def marked_rows(
    db: AsyncSession, session_ids: Sequence[uuid.UUID]
) -> Sequence[Row[uuid.UUID, str, int, datetime, bool]]:
    """The rows of ``session_ids`` as the snapshot needs them; ``queued`` is :func:`in_queue`
    itself, evaluated by the database, so the two can never disagree."""
    rows = await db.execute(
        select(
            ChatSession.id,
            ChatSession.status,
            ChatSession.urgency,
            ChatSession.waiting_since,
            in_queue().label("queued"),
        ).where(ChatSession.id.in_(session_ids))
    )
    return rows.all()


async def queue_position(
    db: AsyncSession, session_id: uuid.UUID, *, ceiling_s: float
) -> int | None:
    """1-based position of one waiting session, None if it is not waiting."""
    for position, (waiting_id, _) in enumerate(await waiting_order(db, ceiling_s=ceiling_s), 1):
        if waiting_id == session_id:
            return position
    return None


class ServiceRate:
    """People served per second over a sliding window, from departures the monitor observed."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._started = clock()
        self._served: deque[float] = deque()

    def record(self, count: int) -> None:
        now = self._clock()
        self._served.extend([now] * count)

    def per_second(self) -> float | None:
        now = self._clock()
        while self._served and self._served[0] < now - self._window_s:
            self._served.popleft()
        if not self._served:
            return None
        observed = min(self._window_s, max(_MIN_RATE_WINDOW_S, now - self._started))
        return len(self._served) / observed


Watcher = Callable[[QueueInfo], None]
# (tier, effective start of the wait, id): ascending is the order of :func:`waiting_order`.
SortKey = tuple[int, float, uuid.UUID]
_READ_CHUNK: Final = 1000
_NOWHERE: Final = QueueInfo(position=None, estimated_wait_s=None)


def sort_key(
    session_id: uuid.UUID, urgency: int, waiting_since: datetime, *, step_s: float
) -> SortKey:
    """Python's spelling of :func:`app.chat.repository.queue_order` (and the id tiebreak)."""
    high = urgency >= Level.high
    offset = 0.0 if high else urgency * step_s
    return (-urgency if high else 0, waiting_since.timestamp() - offset, session_id)


class QueueMonitor(PeriodicWorker):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: Bus,
        *,
        ceiling_s: float,
        refresh_s: float,
        rate_window_s: float,
        debounce_s: float = 0.05,
        full_refresh_s: float | None = None,
    ) -> None:
        super().__init__(
            "queue-monitor",
            interval_s=refresh_s,
            bus=bus,
            wake_channels=(QUEUE_CHANNEL,),
            failure_event="queue_refresh_failed",
            settle_s=debounce_s,
        )
        self._sessionmaker = sessionmaker
        self._bus = bus
        self._ceiling_s = ceiling_s
        self._step_s = level_step_s(ceiling_s)
        self._full_refresh_s = (
            max(60.0, 30 * refresh_s) if full_refresh_s is None else full_refresh_s
        )
        self.rate = ServiceRate(rate_window_s)
        self._keys: dict[uuid.UUID, SortKey] = {}
        self._positions: dict[uuid.UUID, int] = {}
        self._marked: set[uuid.UUID] = set()
        self._loaded = False
        self._last_full = -math.inf
        self._moved = False
        self._published_rate: float | None = None
        self._published: dict[uuid.UUID, QueueInfo] = {}
        self._watchers: dict[uuid.UUID, set[Watcher]] = {}
        self._refresh_lock = asyncio.Lock()
        self._last_refresh_started = -math.inf
        # Observable by tests and benches: whole-queue reads, and rows read by marked passes.
        self.full_reads = 0
        self.rows_reread = 0

    # -- for sockets -------------------------------------------------------------------------

    def watch(self, session_id: uuid.UUID, watcher: Watcher) -> None:
        self._watchers.setdefault(session_id, set()).add(watcher)

    def unwatch(self, session_id: uuid.UUID, watcher: Watcher) -> None:
        watchers = self._watchers.get(session_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[session_id]
                self._published.pop(session_id, None)

    def poke(self) -> None:
        """Something changed the queue: refresh soon (debounced)."""
        self.wake()

    async def lookup(self, session_id: uuid.UUID, *, fresh: bool = False) -> QueueInfo:
        """A session's place now. ``fresh`` waits for a pass begun after this call that re-read
        this session's row (a session that just opened or changed); concurrent callers share
        one pass."""
        if fresh or session_id not in self._positions:
            self._marked.add(session_id)
            await self._refresh_after(time.monotonic())
        return self._info(self._positions.get(session_id))

    def positions(self) -> dict[uuid.UUID, int]:
        """The snapshot as it stands (1 = next to be offered)."""
        return dict(self._positions)

    def _info(self, position: int | None) -> QueueInfo:
        if position is None:
            return QueueInfo(position=None, estimated_wait_s=None)
        return QueueInfo(
            position=position, estimated_wait_s=estimate_wait_s(position, self.rate.per_second())
        )

    # -- what changes it ---------------------------------------------------------------------

    def wakes_on(self, payload: Payload) -> bool:
        if payload.get("kind") == "resync":
            self._loaded = False  # hints may have been lost: read the whole queue again
            return True
        try:
            self._marked.add(uuid.UUID(str(payload.get("session_id"))))
        except ValueError:
            return False
        return True

    # -- refreshing --------------------------------------------------------------------------

    async def tick(self) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        await self._refresh_after(time.monotonic())

    async def _refresh_after(self, requested_at: float) -> None:
        async with self._refresh_lock:
            if self._last_refresh_started >= requested_at:
                return  # a pass that began after the request has completed meanwhile
            started = self._last_refresh_started = time.monotonic()
            if not self._loaded or started - self._last_full >= self._full_refresh_s:
                await self._read_all(started)
            elif self._marked:
                await self._reread_marked()
            self._publish()

    async def _read_all(self, started: float) -> None:
        self._marked.clear()  # the whole read covers them (events after it mark again)
        async with self._sessionmaker() as db:
            rows = await waiting_rows(db, ceiling_s=self._ceiling_s)
            keys = {
                r.id: sort_key(r.id, r.urgency, r.waiting_since, step_s=self._step_s) for r in rows
            }
            departed = [s for s in self._keys if s not in keys]
            if departed:
                served = await db.scalar(
                    select(func.count())
                    .select_from(ChatSession)
                    .where(ChatSession.id.in_(departed), ChatSession.status.in_(SERVED_STATUSES))
                )
                self.rate.record(int(served or 0))
        self._loaded, self._last_full = True, started
        self.full_reads += 1
        if keys != self._keys:
            self._keys = keys
            self._reorder()

    async def _reread_marked(self) -> None:
        marked, self._marked = sorted(self._marked), set()
        found: dict[uuid.UUID, Row[uuid.UUID, str, int, datetime, bool]] = {}
        async with self._sessionmaker() as db:
            for start in range(0, len(marked), _READ_CHUNK):
                found.update(
                    (row.id, row)
                    for row in await marked_rows(db, marked[start : start + _READ_CHUNK])
                )
        self.rows_reread += len(marked)
        changed, served = False, 0
        for session_id in marked:
            row = found.get(session_id)
            if row is not None and row.queued:
                key = sort_key(session_id, row.urgency, row.waiting_since, step_s=self._step_s)
                if self._keys.get(session_id) != key:
                    self._keys[session_id], changed = key, True
            elif self._keys.pop(session_id, None) is not None:
                changed = True
                served += row is not None and row.status in SERVED_STATUSES
        self.rate.record(served)
        if changed:
            self._reorder()

    def _reorder(self) -> None:
        ordered = sorted(self._keys, key=self._keys.__getitem__)
        self._positions = {session_id: i for i, session_id in enumerate(ordered, 1)}
        self._moved = True

    def _publish(self) -> None:
        """Push changed places; with nothing moved and no estimate that can drift, nothing."""
        rate = self.rate.per_second()
        if not self._moved and rate == self._published_rate:
            return
        self._moved, self._published_rate = False, rate
        positions = self._positions
        for session_id, watchers in tuple(self._watchers.items()):
            info = self._info(positions.get(session_id))
            # A socket never told a place is not told "no place": its hello showed it that.
            if self._published.get(session_id, _NOWHERE) == info:
                continue
            self._published[session_id] = info
            for watcher in tuple(watchers):
                watcher(info)
