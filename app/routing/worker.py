"""The routing loop each instance runs (built in the lifespan, never at import).

Every instance may run it: the database claims decide races, so a second router only makes
offers sooner. It wakes on bus hints (a session became waiting, urgency rose, a slot freed) and
otherwise every ``routing_interval_s`` while anyone waits or an offer is open (offer expiry,
language fallback and decline cool-downs are clocks); with neither, every
``routing_idle_interval_s`` at most (heartbeat timeouts and the grace period are the only clocks
left, and everything else comes with a hint).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections import Counter
from collections.abc import Sequence

import structlog
from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import QUEUE_CHANNEL
from app.bus.base import Bus, Payload
from app.bus.events import StatusChanged, decode
from app.chat.models import ChatSession
from app.chat.repository import in_queue
from app.core.config import Settings
from app.core.db import transaction
from app.core.metrics import Metrics
from app.core.worker import PeriodicWorker
from app.routing import assignments, dispatch, notify, presence
from app.routing.models import Assignment
from app.routing.notices import ROUTING_CHANNEL
from app.triage.types import Level

log = structlog.get_logger(__name__)

# Channels whose every payload means "the queue may have changed: route now" (a session opened,
# its urgency rose, it went back to waiting, a volunteer's slot freed up).
DEFAULT_WAKE_CHANNELS: tuple[str, ...] = (ROUTING_CHANNEL, QUEUE_CHANNEL)


async def queue_counts(db: AsyncSession) -> dict[str, int]:
    rows = await db.execute(
        select(ChatSession.urgency, func.count()).where(in_queue()).group_by(ChatSession.urgency)
    )
    counts = {level.name: 0 for level in Level}
    for urgency, count in rows.all():
        counts[Level(urgency).name] = int(count)
    return counts


class QueueBroadcast:
    """Local fan-out of queue counts to this instance's volunteer sockets (each instance
    computes the counts itself, so nothing needs to cross instances)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {level.name: 0 for level in Level}
        self._listeners: set[asyncio.Queue[dict[str, int]]] = set()

    def listen(self) -> asyncio.Queue[dict[str, int]]:
        queue: asyncio.Queue[dict[str, int]] = asyncio.Queue(maxsize=1)
        self._listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[dict[str, int]]) -> None:
        self._listeners.discard(queue)

    def update(self, counts: dict[str, int]) -> None:
        if counts == self.counts:
            return
        self.counts = counts
        for queue in tuple(self._listeners):
            # Only the latest counts matter: replace whatever the socket has not sent yet.
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(counts)


class LocalSockets:
    """How many sockets each volunteer has open on this instance: a second tab (or a phone
    beside the laptop) closing must not mark its owner offline while another is still open."""

    def __init__(self) -> None:
        self._open: Counter[uuid.UUID] = Counter()

    def attach(self, volunteer_id: uuid.UUID) -> None:
        self._open[volunteer_id] += 1

    def detach(self, volunteer_id: uuid.UUID) -> bool:
        """True when this was the volunteer's last socket here."""
        self._open[volunteer_id] -= 1
        if self._open[volunteer_id] <= 0:
            del self._open[volunteer_id]
            return True
        return False


class RoutingWorker(PeriodicWorker):
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        bus: Bus,
        metrics: Metrics,
        wake_channels: Sequence[str] = DEFAULT_WAKE_CHANNELS,
    ) -> None:
        super().__init__(
            "routing",
            interval_s=settings.routing_interval_s,
            bus=bus,
            wake_channels=wake_channels,
            retry_s=min(1.0, settings.routing_interval_s),
        )
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.bus = bus
        self.metrics = metrics
        self.queue = QueueBroadcast()
        self.sockets = LocalSockets()
        self._busy = True  # until a pass finds nobody waiting and no offer open
        self._last_housekeeping = -math.inf

    def wakes_on(self, payload: Payload) -> bool:
        """Every hint may mean new work except a session becoming ``offered``: an offer (often
        this instance's own, just made) frees no slot and adds nobody to the queue, and a pass
        for it would only re-read what it just changed. Everything else wakes it, a resync too."""
        event = decode(payload)
        return not (isinstance(event, StatusChanged) and event.status == "offered")

    def next_wait_s(self) -> float:
        if self._busy:
            return self.interval_s
        settings = self.settings
        idle = min(
            settings.routing_idle_interval_s,
            settings.volunteer_heartbeat_timeout_s / 4,
            settings.volunteer_grace_s / 2,
        )
        return max(self.interval_s, idle)

    async def tick(self) -> None:
        self._busy = True  # a pass that fails part-way retries at the fast cadence
        # Offers first: housekeeping must not sit between a new urgent person and a volunteer.
        made = await dispatch.route_once(self.sessionmaker, self.settings, self.bus)
        for offer in made:
            log.info(
                "offer_made",
                session_id=str(offer.session_id),
                volunteer_id=str(offer.volunteer_id),
                urgency=offer.urgency,
            )
        # Housekeeping and the counts share one transaction: most passes change nothing. The
        # housekeeping runs on clocks (heartbeats, the grace period), so a pass woken by a hint
        # does it only when a cadence's worth of time has gone by since the last.
        now = time.monotonic()
        housekeeping = now - self._last_housekeeping >= self.interval_s
        async with transaction(self.sessionmaker) as db:
            if housekeeping:
                self._last_housekeeping = now
                notices = await presence.sweep(db, self.settings)
                notices.extend(await assignments.end_orphans(db))
                await notify.publish(self.bus, notices, db=db)
            counts = await queue_counts(db)
            offers_open = bool(
                await db.scalar(select(exists().where(Assignment.status == "offered")))
            )
        self._busy = bool(made) or offers_open or any(counts.values())
        for name, count in counts.items():
            self.metrics.queue_depth.labels(urgency=name).set(count)
        self.queue.update(counts)
