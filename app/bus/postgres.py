"""Postgres LISTEN/NOTIFY bus: delivery across every instance sharing the database.

One Postgres channel carries every logical channel, so an instance LISTENs once instead of once
per session, and each instance fans out locally. Events published together travel together: a
notification carries a list of ``[channel, payload]`` pairs (as many as fit the size limit), so a
group commit of 100 messages costs a couple of notifications, not 100. A
dedicated asyncpg connection (opened in the lifespan, not from the pool) listens; a health check
notices a dead listener, reconnects with backoff, and then tells every subscriber to resync,
because notifications sent while it was away are gone.

Publishing with ``db=`` runs ``pg_notify`` inside the caller's transaction: Postgres delivers the
notifications when, and only if, that transaction commits — so "message committed" and
"message announced" can never disagree, even if this process dies right after the commit.

This process's own subscribers do not wait for that round trip (a NOTIFY comes back only after
the COMMIT, through the listener connection: measured ~6 ms on the imminent path): they get the
events as soon as the COMMIT has returned (``Bus._deliver_on_commit``). Every notification
starts with this instance's origin marker, and the listener drops its own, so each subscriber
still hears each event once. Other instances skip the marker (a channel nobody subscribes to).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.bus.base import MAX_PAYLOAD_BYTES, Bus, Event, Notification, encode_payload

log = structlog.get_logger(__name__)

PG_CHANNEL: Final = "beacon_bus"
# The first pair of every notification: [ORIGIN_CHANNEL, {"id": <instance>}].
ORIGIN_CHANNEL: Final = "~origin"
_NOTIFY = text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS t(p)")


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The same database as the engine's URL, spelled for a raw asyncpg connection."""
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def _pack(events: Sequence[Event], origin: str) -> list[str]:
    """Events as few notifications as the size limit allows, in order, each notification
    opened by the ``origin`` marker item."""
    notifications: list[str] = []
    base = 2 + len(origin.encode("utf-8")) + 1
    current: list[str] = [origin]
    size = base
    for channel, payload in events:
        item = encode_payload([channel, payload])
        if len(current) > 1 and size + len(item.encode("utf-8")) + 1 > MAX_PAYLOAD_BYTES:
            notifications.append("[" + ",".join(current) + "]")
            current, size = [origin], base
        current.append(item)
        size += len(item.encode("utf-8")) + 1
    if len(current) > 1:
        notifications.append("[" + ",".join(current) + "]")
    return notifications


class PostgresBus(Bus):
    def __init__(
        self,
        *,
        database_url: str,
        engine: AsyncEngine,
        pg_channel: str = PG_CHANNEL,
        health_interval_s: float = 5.0,
        max_reconnect_delay_s: float = 5.0,
        publish_timeout_s: float = 5.0,
    ) -> None:
        super().__init__()
        self._dsn = asyncpg_dsn(database_url)
        self._engine = engine
        self._pg_channel = pg_channel
        self._health_interval_s = health_interval_s
        self._max_reconnect_delay_s = max_reconnect_delay_s
        self._publish_timeout_s = publish_timeout_s
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self.reconnects = 0  # observable by tests and operators
        self._origin = encode_payload([ORIGIN_CHANNEL, {"id": uuid.uuid4().hex}])
        self._own_prefix = "[" + self._origin

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._connect()
        self._watchdog = asyncio.create_task(self._watch(), name="bus-listener-watchdog")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self._close_connection()
        await super().stop()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            await conn.add_listener(self._pg_channel, self._on_notify)
        except BaseException:
            conn.terminate()  # half set up: no LISTEN, so no use; never leak it
            raise
        conn.add_termination_listener(self._on_terminated)
        self._conn = conn
        self._lost.clear()

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)

    def _on_terminated(self, _: Any) -> None:
        self._lost.set()

    async def _watch(self) -> None:
        """Runs for the bus's whole life: if it ever stopped, this instance would stay deaf to
        every other instance. So any failure of a check or a reconnect means "retry"."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=self._health_interval_s)
            if not self._lost.is_set() and await self._healthy():
                continue
            log.warning("bus_listener_lost")
            await self._close_connection()
            delay = 0.05
            while True:
                try:
                    await self._connect()
                    break
                except Exception as exc:  # whatever a server that is away makes the driver raise
                    log.warning("bus_listener_reconnect_failed", error_type=type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_reconnect_delay_s)
            self.reconnects += 1
            log.info("bus_listener_reconnected", reconnects=self.reconnects)
            # Whatever was notified while we were away is lost: everyone reloads from the DB.
            self._resync_all()

    async def _healthy(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=self._health_interval_s)
        except Exception:
            # Not only OSError/PostgresError/InterfaceError: on a connection the server has just
            # dropped asyncpg can raise InternalClientError ("cannot switch to state ...;
            # another operation is in progress"), which used to kill the watchdog for good.
            return False
        return True

    # -- receiving ---------------------------------------------------------------------------

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, raw: str) -> None:
        if raw.startswith(self._own_prefix):
            return  # ours: this process's subscribers had it when the COMMIT returned
        try:
            pairs = json.loads(raw)
        except ValueError:
            log.warning("bus_bad_notification")
            return
        if not isinstance(pairs, list):
            return
        for pair in pairs:
            if isinstance(pair, list) and len(pair) == 2:
                channel, payload = pair
                if (
                    isinstance(channel, str)
                    and isinstance(payload, dict)
                    and channel != ORIGIN_CHANNEL
                ):
                    self._dispatch(channel, payload)

    # -- publishing --------------------------------------------------------------------------

    def stage(self, events: Sequence[Event], db: AsyncSession) -> Notification:
        notification = Notification(self._pg_channel, _pack(events, self._origin))
        self._deliver_on_commit(db, events)
        return notification

    def stage_detached(self, events: Sequence[Event]) -> Notification:
        return Notification(self._pg_channel, _pack(events, self._origin))

    async def publish_many(
        self, events: Sequence[Event], *, db: AsyncSession | None = None
    ) -> None:
        if not events:
            return
        if db is not None:
            note = self.stage(events, db)
            await db.execute(_NOTIFY, {"channel": note.channel, "payloads": note.payloads})
            return
        params = {"channel": self._pg_channel, "payloads": _pack(events, self._origin)}
        # Outside a transaction nobody else bounds this: a pool with no free connection, or a
        # server that is away, would hold the caller (a visitor's frame handler, for a typing
        # hint) for the pool's and the driver's own timeouts, 30 s each. Such a publish is
        # ephemeral, so the caller gets a TimeoutError to drop it on instead.
        async with asyncio.timeout(self._publish_timeout_s), self._engine.connect() as conn:
            await conn.execute(_NOTIFY, params)
            await conn.commit()
        self._deliver(events)
