"""Visitor presence across instances, and giving up on visitors who are gone (SPEC §3).

Each instance keeps ``visitor_seen_at`` fresh for the sessions whose visitor has a socket on it
(one UPDATE per heartbeat for all of them). A session whose ``visitor_seen_at`` is older than the
grace period therefore has no visitor anywhere — also when the instance holding their socket was
killed and never got to say so — and the sweeper marks it ``abandoned``: only from ``waiting`` or
``active``, never at ``high`` or above (those stay for a supervisor), conditionally, so several
instances sweeping at once abandon a session once.

A session whose visitor never spoke was never in the queue; once its visitor's sockets are all
closed it is abandoned after ``silent_ttl_s`` (a minute) instead of the grace period, so a flood
of drive-by hellos leaves nothing behind for long. It is not lost: its resume token still
reopens it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Final

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import Bus
from app.chat.models import ChatSession
from app.chat.service import (
    abandon_if_still_stale,
    abandon_silent,
    silent_sessions,
    stale_visitor_sessions,
)
from app.core.db import among, transaction, utcnow
from app.core.worker import PeriodicWorker

log = structlog.get_logger(__name__)

_CHUNK: Final = 1000


class VisitorPresence(PeriodicWorker):
    """The sweeper is the worker's tick (every ``sweep_interval_s``); the heartbeat is its second
    cadence (``extra_loops``), so both live, fail and stop like every other background loop."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: Bus,
        *,
        grace_s: float,
        sweep_interval_s: float,
        silent_ttl_s: float | None = None,
    ) -> None:
        super().__init__(
            "visitor-sweeper", interval_s=sweep_interval_s, failure_event="visitor_sweep_failed"
        )
        self._sessionmaker = sessionmaker
        self._bus = bus
        self._grace_s = grace_s
        self._silent_ttl_s = grace_s if silent_ttl_s is None else min(silent_ttl_s, grace_s)
        # A heartbeat well inside both periods, so a live visitor never looks stale.
        self._heartbeat_s = min(60.0, max(0.05, min(grace_s, self._silent_ttl_s) / 4))
        self._local: Counter[uuid.UUID] = Counter()

    # -- sockets on this instance ------------------------------------------------------------

    def attach(self, session_id: uuid.UUID) -> None:
        self._local[session_id] += 1

    def detach(self, session_id: uuid.UUID) -> bool:
        """True when this was the session's last socket on this instance."""
        self._local[session_id] -= 1
        if self._local[session_id] <= 0:
            del self._local[session_id]
            return True
        return False

    def is_local(self, session_id: uuid.UUID) -> bool:
        return session_id in self._local

    # -- background work ---------------------------------------------------------------------

    async def tick(self) -> None:
        await self._sweep_both()

    def extra_loops(self) -> list[Coroutine[Any, Any, None]]:
        return [self._heartbeats()]

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self.heartbeat()
            except Exception as exc:  # the database may be briefly away; the next round retries
                log.error("visitor_heartbeat_failed", error_type=type(exc).__name__)

    async def heartbeat(self) -> None:
        """One UPDATE per chunk of this instance's sessions. A row another transaction holds
        (a message being committed, a socket closing) is skipped this round, not waited for:
        waiting would hold every row already updated, and a chain of such waits once held a
        talking visitor's acks for seconds under a flood of drive-by sessions. The next round,
        well inside both periods, catches it up."""
        session_ids = sorted(self._local)
        now = utcnow()
        for start in range(0, len(session_ids), _CHUNK):
            chunk = session_ids[start : start + _CHUNK]
            async with transaction(self._sessionmaker) as db:
                free = (
                    select(ChatSession.id)
                    .where(
                        among(db, ChatSession.id, chunk),
                        # A socket that closed after ``session_ids`` was read wrote a later
                        # time: this write must not mark that visitor connected again.
                        ChatSession.visitor_seen_at < now,
                    )
                    .with_for_update(skip_locked=True)
                )
                await db.execute(
                    update(ChatSession)
                    .where(ChatSession.id.in_(free.scalar_subquery()))
                    .values(visitor_connected=True, visitor_seen_at=now)
                    .execution_options(synchronize_session=False)
                )

    async def _sweep_both(self) -> None:
        await self.sweep_silent()
        await self.sweep()

    async def sweep_silent(self) -> list[uuid.UUID]:
        """Abandon sessions that never spoke, whose visitor left over ``silent_ttl_s`` ago."""
        abandoned: list[uuid.UUID] = []
        while True:
            async with self._sessionmaker() as db:
                found = await silent_sessions(db, ttl_s=self._silent_ttl_s, limit=_CHUNK)
            candidates = [s for s in found if not self.is_local(s)]
            done: list[uuid.UUID] = []
            if candidates:
                async with transaction(self._sessionmaker) as db:
                    done = await abandon_silent(
                        db, self._bus, session_ids=candidates, ttl_s=self._silent_ttl_s
                    )
            abandoned += done
            if len(found) < _CHUNK or not done:
                break
        if abandoned:
            log.info("silent_sessions_abandoned", count=len(abandoned))
        return abandoned

    async def sweep(self) -> list[uuid.UUID]:
        """Abandon sessions whose visitor has been gone past the grace period; returns them."""
        async with self._sessionmaker() as db:
            candidates = await stale_visitor_sessions(db, grace_s=self._grace_s)
        abandoned = []
        for session_id, status in candidates:
            if self.is_local(session_id):
                continue  # a socket here is live; its heartbeat is just late
            async with transaction(self._sessionmaker) as db:
                done = await abandon_if_still_stale(
                    db, self._bus, session_id=session_id, status=status, grace_s=self._grace_s
                )
            if done:
                abandoned.append(session_id)
                log.info("session_abandoned", session_id=str(session_id))
        return abandoned
