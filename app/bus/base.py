"""The bus interface: small JSON payloads published on named channels, fanned out to subscribers.

Payloads are *hints* ("message 17 of session S was committed"), never the data itself: receivers
load what they need from the database by id/seq. That keeps payloads far below the Postgres
NOTIFY limit, keeps message text out of the notification queue, and makes every subscriber
robust to a lost hint — when the bus cannot promise it delivered everything (a listener
reconnected, a subscriber fell behind), it hands the subscriber a ``{"kind": "resync"}`` payload
and the subscriber reloads its state from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

Payload = dict[str, Any]
Event = tuple[str, Payload]

RESYNC: Final[Payload] = {"kind": "resync"}
# Postgres refuses NOTIFY payloads of 8000 bytes or more; the envelope needs some of that.
MAX_PAYLOAD_BYTES: Final = 7000
# A subscriber this far behind gets a resync instead of an ever-growing backlog.
DEFAULT_SUBSCRIBER_BACKLOG: Final = 1000
# sync_session.info keys of a transaction that published (see Bus._deliver_on_commit).
_PENDING_KEY: Final = "beacon.bus.pending"
_LISTENING_KEY: Final = "beacon.bus.listening"
_COMMITTING_KEY: Final = "beacon.bus.committing"


@dataclass(frozen=True, slots=True)
class Notification:
    """What a transaction must itself send for other processes to hear its events:
    ``pg_notify(channel, payload)`` for each payload, in order (see :meth:`Bus.stage`)."""

    channel: str
    payloads: list[str]


def encode_payload(payload: Payload | list[Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
    if len(raw.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise ValueError("bus payloads carry ids, not content: payload too large")
    return raw


class Subscription:
    """Payloads published on one channel after ``subscribe`` returned, in publication order.

    Use as an async context manager (it unsubscribes on exit) and iterate with ``async for``.
    """

    __slots__ = (
        "_backlog",
        "_closed",
        "_overflowed",
        "_queue",
        "accept",
        "bus",
        "channel",
        "notify",
    )

    def __init__(self, bus: Bus, channel: str, backlog: int) -> None:
        self.bus = bus
        self.channel = channel
        # Optional: payloads it rejects are dropped on arrival, without waking the consumer
        # (a socket skipping hints for what it has already delivered).
        self.accept: Callable[[Payload], bool] | None = None
        # Optional: called after each payload queued (and on resync), for a consumer that is
        # not parked in ``get()`` but starts draining when there is something to drain.
        self.notify: Callable[[], None] | None = None
        self._backlog = backlog
        # Made on first use: most visitor sockets sit idle, and an empty asyncio.Queue is ~3 KiB.
        self._queue: asyncio.Queue[Payload] | None = None
        self._overflowed = False
        self._closed = False

    def _payloads(self) -> asyncio.Queue[Payload]:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self._backlog)
        return self._queue

    def deliver(self, payload: Payload) -> None:
        """Called by the bus (and by local producers such as the queue monitor); never blocks."""
        if self._closed or (self.accept is not None and not self.accept(payload)):
            return
        try:
            self._payloads().put_nowait(payload)
        except asyncio.QueueFull:
            # Dropping is safe because payloads are hints: the consumer reloads from the database.
            self._overflowed = True
        if self.notify is not None:
            self.notify()

    def resync(self) -> None:
        """Tell the consumer that hints may have been lost; it should reload from the database."""
        self._overflowed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._payloads().put_nowait(dict(RESYNC))  # wakes a consumer blocked in get()
        if self.notify is not None:
            self.notify()

    def pending(self) -> bool:
        """Whether :meth:`get` would return at once."""
        return self._overflowed or (self._queue is not None and not self._queue.empty())

    async def get(self) -> Payload:
        queue = self._payloads()
        if not self._overflowed:
            payload = await queue.get()
            if not self._overflowed:
                return payload
        # A resync supersedes every hint still queued: the consumer reloads everything anyway.
        while not queue.empty():
            queue.get_nowait()
        self._overflowed = False
        return dict(RESYNC)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Payload:
        if self._closed:
            raise StopAsyncIteration
        return await self.get()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.bus._unsubscribe(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Bus(ABC):
    """Publish/subscribe between connections, and between instances where the backend allows."""

    def __init__(self, *, backlog: int = DEFAULT_SUBSCRIBER_BACKLOG) -> None:
        self._backlog = backlog
        self._subscribers: dict[str, set[Subscription]] = {}

    # -- subscribing -------------------------------------------------------------------------

    def subscribe(self, channel: str) -> Subscription:
        subscription = Subscription(self, channel, self._backlog)
        self._subscribers.setdefault(channel, set()).add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.channel)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.channel]

    def subscriber_count(self, channel: str | None = None) -> int:
        if channel is None:
            return sum(len(s) for s in self._subscribers.values())
        return len(self._subscribers.get(channel, ()))

    def _dispatch(self, channel: str, payload: Payload) -> None:
        for subscription in tuple(self._subscribers.get(channel, ())):
            # Each subscriber gets its own copy: one consumer mutating a payload can't hurt another.
            subscription.deliver(dict(payload))

    def _deliver(self, events: Sequence[Event]) -> None:
        for channel, payload in events:
            self._dispatch(channel, payload)

    def _deliver_on_commit(self, db: AsyncSession, events: Sequence[Event]) -> None:
        """Hand ``events`` to this process's subscribers when ``db``'s transaction commits
        (right after COMMIT returns, with no round trip); drop them if it rolls back.

        Only the outermost transaction counts: SQLAlchemy also fires its commit and rollback
        events for savepoints, and a savepoint released (or rolled back) must neither deliver
        nor drop what the transaction around it published. A COMMIT that failed on the way
        (the connection dropped: it may or may not have committed) tells the subscribers of
        those channels to resync: a hint that may be lost is what a resync is for."""
        sync_session = db.sync_session
        info = sync_session.info
        if not info.get(_LISTENING_KEY):
            # Listeners stay for the session's (short) life; they act only on pending events.
            info[_LISTENING_KEY] = True
            event.listen(sync_session, "before_commit", self._before_commit)
            event.listen(sync_session, "after_commit", self._after_commit)
            event.listen(sync_session, "after_rollback", self._after_rollback)
        info.setdefault(_PENDING_KEY, []).extend(events)

    @staticmethod
    def _outermost(session: Session) -> bool:
        return not session.in_nested_transaction()

    def _before_commit(self, session: Session) -> None:
        if self._outermost(session) and session.info.get(_PENDING_KEY):
            session.info[_COMMITTING_KEY] = True

    def _after_commit(self, session: Session) -> None:
        if not self._outermost(session):
            return
        session.info.pop(_COMMITTING_KEY, None)
        self._deliver(session.info.pop(_PENDING_KEY, []))

    def _after_rollback(self, session: Session) -> None:
        if not self._outermost(session):
            return
        pending: list[Event] = session.info.pop(_PENDING_KEY, [])
        if session.info.pop(_COMMITTING_KEY, False):
            for channel in dict.fromkeys(channel for channel, _ in pending):
                for subscription in tuple(self._subscribers.get(channel, ())):
                    subscription.resync()

    def _resync_all(self) -> None:
        for subscribers in tuple(self._subscribers.values()):
            for subscription in tuple(subscribers):
                subscription.resync()

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self, channel: str, payload: Payload, *, db: AsyncSession | None = None
    ) -> None:
        await self.publish_many([(channel, payload)], db=db)

    @abstractmethod
    async def publish_many(
        self, events: Sequence[Event], *, db: AsyncSession | None = None
    ) -> None:
        """Publish in order. With ``db``, the events belong to that transaction: they are
        delivered only if (and once) it commits, and dropped if it rolls back."""

    @abstractmethod
    def stage(self, events: Sequence[Event], db: AsyncSession) -> Notification | None:
        """``publish_many(events, db=db)`` without its round trip: the events are delivered
        in this process when ``db`` commits, and what other processes must be notified of is
        returned for the caller to send in a statement of that transaction it sends anyway
        (the group commit folds it into its INSERT). None: nothing to send (one process)."""

    @abstractmethod
    def stage_detached(self, events: Sequence[Event]) -> Notification | None:
        """:meth:`stage` for a statement that runs with no ORM session around it (the group
        commit's one-statement path): what that statement must send for other processes. The
        caller hands ``events`` to this process's subscribers with :meth:`deliver_committed`
        once the statement has committed, and only then."""

    def deliver_committed(self, events: Sequence[Event]) -> None:
        """This process's subscribers hear ``events``, which the caller's own statement has
        committed (see :meth:`stage_detached`)."""
        self._deliver(events)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections the backend needs (called from the lifespan)."""

    async def stop(self) -> None:
        self._resync_all()
        self._subscribers.clear()
