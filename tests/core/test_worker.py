"""The periodic-worker base every background loop is built on: no database, no server."""

from __future__ import annotations

import asyncio
from typing import Any

from app.bus import InProcessBus
from app.bus.base import Payload
from app.core.worker import PeriodicWorker


class Probe(PeriodicWorker):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("probe", **kwargs)
        self.ticks = 0
        self.ticked = asyncio.Event()
        self.fail_next = False
        self.on = True

    def enabled(self) -> bool:
        return self.on

    def wakes_on(self, payload: Payload) -> bool:
        return payload.get("kind") != "ignored"

    async def tick(self) -> None:
        self.ticks += 1
        self.ticked.set()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the database went away")


async def _next_tick(worker: Probe) -> None:
    worker.ticked.clear()
    await asyncio.wait_for(worker.ticked.wait(), 2.0)


async def test_a_wake_runs_a_tick_long_before_the_interval() -> None:
    worker = Probe(interval_s=60.0)
    await worker.start()
    try:
        worker.wake()
        await _next_tick(worker)
        assert worker.ticks == 1
    finally:
        await worker.stop()


async def test_bus_hints_wake_it_unless_it_declines_them() -> None:
    bus = InProcessBus()
    worker = Probe(interval_s=60.0, bus=bus, wake_channels=("queue",))
    await worker.start()
    try:
        await bus.publish("queue", {"kind": "ignored"})
        await asyncio.sleep(0.05)
        assert worker.ticks == 0
        await bus.publish("queue", {"kind": "status"})
        await _next_tick(worker)
        assert worker.ticks == 1
    finally:
        await worker.stop()
    assert bus.subscriber_count() == 0


async def test_a_failing_tick_does_not_stop_the_loop() -> None:
    worker = Probe(interval_s=0.01, retry_s=0.01)
    worker.fail_next = True
    await worker.start()
    try:
        await _next_tick(worker)  # fails
        await _next_tick(worker)  # and the loop goes on
        assert worker.ticks >= 2
    finally:
        await worker.stop()


async def test_a_disabled_worker_starts_nothing_and_stop_is_safe_twice() -> None:
    worker = Probe(interval_s=0.01)
    worker.on = False
    await worker.start()
    await asyncio.sleep(0.05)
    assert worker.ticks == 0
    await worker.stop()
    await worker.stop()
