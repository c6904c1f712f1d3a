"""One shape for every background loop the lifespan starts (routing, escalation, queue monitor,
retention, the lost-visitor watch...): run :meth:`PeriodicWorker.tick` every ``interval_s``, or
sooner when woken — by :meth:`~PeriodicWorker.wake` or by a payload on one of its bus channels
that :meth:`~PeriodicWorker.wakes_on` accepts.

A tick that raises is logged (its error type only, never its message) and the loop carries on
after ``retry_s``: a database that is briefly away must never stop a worker for good. Only
``stop()`` (cancellation) ends it. Each instance runs its own; the database decides races.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Sequence
from typing import Any

import structlog

from app.bus.base import Bus, Payload, Subscription

log = structlog.get_logger(__name__)


class PeriodicWorker(ABC):
    def __init__(
        self,
        name: str,
        *,
        interval_s: float,
        bus: Bus | None = None,
        wake_channels: Sequence[str] = (),
        retry_s: float = 0.0,
        failure_event: str | None = None,
        settle_s: float = 0.0,
    ) -> None:
        self.name = name
        self._failure_event = failure_event or f"{name}_pass_failed"
        self.interval_s = interval_s
        self._wake_bus = bus
        self._wake_channels = tuple(wake_channels)
        self._retry_s = retry_s
        # After a wake, let a burst of hints settle before the tick (they all count as one).
        self._settle_s = settle_s
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[Subscription] = []

    @abstractmethod
    async def tick(self) -> None:
        """One pass of the worker's work (each step in its own transaction)."""

    def enabled(self) -> bool:
        """False to start nothing at all (a worker turned off by its settings)."""
        return True

    def first_delay_s(self) -> float:
        """How long before the first tick (woken sooner by a hint, like every later wait)."""
        return self.interval_s

    def next_wait_s(self) -> float:
        """How long after this tick before the next, unless woken sooner. A worker with nothing
        in flight may wait longer than ``interval_s`` when every new piece of work comes with
        a wake-up hint: an idle server then costs (almost) nothing."""
        return self.interval_s

    def wakes_on(self, payload: Payload) -> bool:
        """Whether a payload on a wake channel should run a tick now (default: every one)."""
        return True

    def extra_loops(self) -> list[Coroutine[Any, Any, None]]:
        """Other loops that live and die with this worker (a second cadence, say)."""
        return []

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if not self.enabled():
            return
        if self._wake_bus is not None:
            for channel in self._wake_channels:
                subscription = self._wake_bus.subscribe(channel)
                self._subscriptions.append(subscription)
                self._start_task(self._pump(subscription), f"{self.name}-pump")
        self._start_task(self._run(), self.name)
        for loop in self.extra_loops():
            self._start_task(loop, f"{self.name}-extra")

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _start_task(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def _pump(self, subscription: Subscription) -> None:
        async for payload in subscription:
            if self.wakes_on(payload):
                self._wake.set()

    async def _wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout_s)
        if self._settle_s > 0:
            await asyncio.sleep(self._settle_s)
        self._wake.clear()

    async def _run(self) -> None:
        await self._wait(self.first_delay_s())
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad pass must never stop the worker for good
                log.error(self._failure_event, error_type=type(exc).__name__)
                if self._retry_s > 0:
                    await asyncio.sleep(self._retry_s)
                await self._wait(self.interval_s)
                continue
            await self._wait(self.next_wait_s())
