"""What a waiting visitor is told (SPEC §4): their place in the queue and an honest wait estimate.

Order is the effective priority of :mod:`app.domain.priority` (urgency tiers, then aging by
time waited), the same rule routing uses to choose who is offered next, so "position 1" really
is the next person offered to a free volunteer.

Wait estimate — chosen to be honest rather than reassuring: ``null`` until this instance has
seen people leave the queue to a volunteer or a partner hotline; then
``position / (people served per second over the last queue_rate_window_s)``, rounded UP to the
next 30 s. A made-up average handle time would invent a number on a quiet night with nobody
online; this one is null exactly when we do not know.

:class:`QueueMonitor` keeps one ordered snapshot per instance (one query per refresh, however
many visitors wait) and pushes changed positions to the sockets that watch them.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import QUEUE_CHANNEL, Bus
from app.chat.models import ChatSession
from app.chat.repository import in_queue, queue_order
from app.core.worker import PeriodicWorker
from app.domain.machine import values
from app.domain.session import SERVED

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
        self._refresh_s = refresh_s
        self._debounce_s = debounce_s
        self.rate = ServiceRate(rate_window_s)
        self._positions: dict[uuid.UUID, int] = {}
        self._published: dict[uuid.UUID, QueueInfo] = {}
        self._watchers: dict[uuid.UUID, set[Watcher]] = {}
        self._refresh_lock = asyncio.Lock()
        self._last_refresh_started = -math.inf

    # -- for sockets -------------------------------------------------------------------------

    def watch(self, session_id: uuid.UUID, watcher: Watcher) -> Callable[[], None]:
        self._watchers.setdefault(session_id, set()).add(watcher)

        def unwatch() -> None:
            watchers = self._watchers.get(session_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[session_id]

        return unwatch

    def poke(self) -> None:
        """Something changed the queue: refresh soon (debounced)."""
        self.wake()

    async def lookup(self, session_id: uuid.UUID, *, fresh: bool = False) -> QueueInfo:
        """A session's place now. ``fresh`` waits for a snapshot taken after this call (a session
        that just opened or changed); concurrent callers share one refresh."""
        if fresh or session_id not in self._positions:
            await self._refresh_after(time.monotonic())
        return self._info(self._positions.get(session_id))

    def _info(self, position: int | None) -> QueueInfo:
        if position is None:
            return QueueInfo(position=None, estimated_wait_s=None)
        return QueueInfo(
            position=position, estimated_wait_s=estimate_wait_s(position, self.rate.per_second())
        )

    # -- refreshing --------------------------------------------------------------------------

    async def tick(self) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        await self._refresh_after(time.monotonic())

    async def _refresh_after(self, requested_at: float) -> None:
        async with self._refresh_lock:
            if self._last_refresh_started >= requested_at:
                return  # a refresh that began after the request has completed meanwhile
            self._last_refresh_started = time.monotonic()
            async with self._sessionmaker() as db:
                order = await waiting_order(db, ceiling_s=self._ceiling_s)
                positions = {session_id: i for i, (session_id, _) in enumerate(order, 1)}
                departed = [s for s in self._positions if s not in positions]
                if departed:
                    served = await db.scalar(
                        select(func.count())
                        .select_from(ChatSession)
                        .where(
                            ChatSession.id.in_(departed), ChatSession.status.in_(SERVED_STATUSES)
                        )
                    )
                    self.rate.record(int(served or 0))
            self._positions = positions
            for session_id, watchers in tuple(self._watchers.items()):
                info = self._info(positions.get(session_id))
                if self._published.get(session_id) == info:
                    continue
                self._published[session_id] = info
                for watcher in tuple(watchers):
                    watcher(info)
            for session_id in tuple(self._published):
                if session_id not in self._watchers:
                    del self._published[session_id]
