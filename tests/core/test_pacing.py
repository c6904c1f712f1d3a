"""The accept pacer (app/core/pacing.py) on the real event loop. How busy the loop looks is
given by the CPU clock the pacer reads: the wall clock itself reads as a loop that is never
idle, a constant as one that never works, so each case is deterministic without burning CPU."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from app.core.pacing import AcceptPacer

MAX_HOLD_S = 0.5
TICK_S = 0.005


def always_busy() -> float:
    return time.perf_counter()


def never_busy() -> float:
    return 0.0


class Arrivals:
    """Connections offered to a pacer; when each one went on, by its number."""

    def __init__(self, pacer: AcceptPacer) -> None:
        self.pacer = pacer
        self.offered_at: dict[int, float] = {}
        self.went_on: dict[int, float] = {}
        self.order: list[int] = []

    def offer(self, number: int) -> bool:
        self.offered_at[number] = time.perf_counter()

        def resume() -> None:
            self.went_on[number] = time.perf_counter()
            self.order.append(number)

        admitted = self.pacer.admit(resume)
        if admitted:
            resume()
        return admitted

    def waited(self, number: int) -> float:
        return self.went_on[number] - self.offered_at[number]

    async def all_on(self, count: int, wait_s: float = 5.0) -> None:
        async with asyncio.timeout(wait_s):
            while len(self.went_on) < count:  # noqa: ASYNC110 - polling a plain dict
                await asyncio.sleep(0.001)


def pacer(
    loop_cpu: Callable[[], float],
    contended: Callable[[], bool] = lambda: True,
    holds: list[float] | None = None,
) -> AcceptPacer:
    return AcceptPacer(
        busy_share=0.5,
        max_hold_s=MAX_HOLD_S,
        contended=contended,
        tick_s=TICK_S,
        per_tick=4,
        loop_cpu=loop_cpu,
        observe_hold=(holds if holds is not None else []).append,
    )


async def test_while_nobody_talks_nothing_is_held_however_busy_the_loop() -> None:
    arrivals = Arrivals(pacer(always_busy, contended=lambda: False))
    assert all(arrivals.offer(n) for n in range(50))
    assert arrivals.pacer.held_total == 0
    assert not arrivals.pacer.watching  # no task either: nothing to protect


async def test_a_busy_loop_holds_new_connections_in_order_until_their_time_is_up() -> None:
    holds: list[float] = []
    arrivals = Arrivals(pacer(always_busy, holds=holds))
    assert arrivals.offer(0)  # before the first measurement the loop is taken to be calm
    await asyncio.sleep(3 * TICK_S)  # a tick has measured it busy
    assert not any(arrivals.offer(n) for n in range(1, 9))
    await asyncio.sleep(MAX_HOLD_S / 2)
    assert sorted(arrivals.went_on) == [0]  # still held half-way
    await arrivals.all_on(9)
    assert arrivals.order == list(range(9))
    for number in range(1, 9):
        assert MAX_HOLD_S <= arrivals.waited(number) < MAX_HOLD_S + 0.5
    # What the metric is told: each held connection's wait, the one let in at once not at all.
    assert len(holds) == 8
    assert all(MAX_HOLD_S <= hold < MAX_HOLD_S + 0.5 for hold in holds)


async def test_a_calm_loop_lets_a_few_through_each_tick() -> None:
    arrivals = Arrivals(pacer(never_busy))
    admitted_now = [arrivals.offer(n) for n in range(12)]
    assert admitted_now == [True] * 4 + [False] * 8  # four per tick
    await arrivals.all_on(12, wait_s=MAX_HOLD_S / 2)  # well before anyone's time is up
    assert arrivals.order == list(range(12))
    assert arrivals.pacer.held_total == 8


async def test_when_the_talking_stops_everything_held_goes_on_at_once() -> None:
    talking = True
    arrivals = Arrivals(pacer(always_busy, contended=lambda: talking))
    arrivals.offer(0)
    await asyncio.sleep(3 * TICK_S)
    for number in range(1, 6):
        assert not arrivals.offer(number)
    talking = False
    await arrivals.all_on(6, wait_s=MAX_HOLD_S / 2)
    assert arrivals.order == list(range(6))
    # Whoever arrives now goes on at once: nothing is waiting ahead of them.
    assert arrivals.offer(6)


async def test_a_newcomer_queues_behind_those_already_waiting() -> None:
    # Nobody talking any more, but connections held from before: first come, first served.
    talking = True
    arrivals = Arrivals(pacer(always_busy, contended=lambda: talking))
    arrivals.offer(0)
    await asyncio.sleep(3 * TICK_S)
    assert not arrivals.offer(1)
    talking = False
    assert not arrivals.offer(2)
    await arrivals.all_on(3, wait_s=MAX_HOLD_S / 2)
    assert arrivals.order == [0, 1, 2]


async def test_a_failing_connection_does_not_strand_the_others() -> None:
    paced = pacer(never_busy)
    went_on: list[int] = []

    def failing() -> None:
        raise RuntimeError("this connection's protocol broke")

    for _ in range(4):
        assert paced.admit(failing)  # this tick's four
    held = [paced.admit(lambda n=n: went_on.append(n)) for n in range(3)]
    assert held == [False, False, False]
    assert not paced.admit(failing)
    assert not paced.admit(lambda: went_on.append(3))
    async with asyncio.timeout(1):
        while len(went_on) < 4:  # noqa: ASYNC110 - polling a plain list
            await asyncio.sleep(0.001)
    assert went_on == [0, 1, 2, 3]


async def test_its_task_ends_once_idle_and_close_lets_everyone_through() -> None:
    arrivals = Arrivals(pacer(never_busy))
    for number in range(6):
        arrivals.offer(number)
    await arrivals.all_on(6)
    async with asyncio.timeout(2):
        while arrivals.pacer.watching:  # noqa: ASYNC110 - polling the pacer's own state
            await asyncio.sleep(0.01)

    busy = Arrivals(pacer(always_busy))
    busy.offer(0)
    await asyncio.sleep(3 * TICK_S)
    assert not busy.offer(1)
    await busy.pacer.close()  # the server is stopping: it closes the held ones itself
    assert busy.order == [0, 1]
    assert busy.offer(2)  # and never holds again
    assert not busy.pacer.watching


@pytest.mark.parametrize("share", [0.0, 1.5])
def test_the_busy_share_is_a_share(share: float) -> None:
    from pydantic import ValidationError

    from app.core.config import Settings

    with pytest.raises(ValidationError):
        Settings(accept_busy_share=share)
