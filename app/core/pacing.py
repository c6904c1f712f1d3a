"""New connections wait their turn while the conversations under way need the event loop
(SPEC §9: a flood must not hurt the people already talking; SPEC §10: time to ack).

An instance serves every socket from one event loop, and each new connection costs that loop
about a millisecond of work (the request head, the WebSocket handshake, the hello and its
commit, the close). Under a flood of them each handshake is one more ready
callback ahead of the frames of people already talking: 2,000 drive-by sessions at ~900/s kept
the loop at ~90 % of a core, and a visitor chatting meanwhile waited 20 ms for an ack at the
median and 70-130 ms at p99 (``bench.drive_by_flood``), against 7 ms when quiet.

So while someone is talking (``contended``) and the loop thread used more than ``busy_share``
of its time over the last tick, a new connection is held before anything is read from it, and
each calm tick lets the oldest few through. Holding costs only the accepted socket. Nobody is
refused: a connection is held ``max_hold_s`` at most, first come first served, so a person
arriving in the middle of a flood reaches the queue a little later, not never. With nobody
talking nothing is held (a reconnect storm before anyone speaks again): there is no
conversation to protect, and letting connections in a few at a time only makes their commits
smaller, so the storm would take longer. Trade-offs and figures: docs/operations.md.

The pacer runs a task only while it holds something or has just let something through; an
idle instance pays nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import structlog

log = structlog.get_logger(__name__)

Resume = Callable[[], None]

# Connections let through per calm tick: small groups keep each tick's extra work to a few ms
# (the people talking wait behind one group at most); bigger groups made the chatting canary's
# ack p99 worse in bench.drive_by_flood.
PER_TICK: Final = 4
TICK_S: Final = 0.005
# Ticks with nothing held before the task ends (0.1 s): a flood's gaps do not restart it.
_IDLE_TICKS: Final = 20


class AcceptPacer:
    """Decides, for each new connection, whether it goes on now or waits its turn."""

    def __init__(
        self,
        *,
        busy_share: float,
        max_hold_s: float,
        contended: Callable[[], bool],
        per_tick: int = PER_TICK,
        tick_s: float = TICK_S,
        clock: Callable[[], float] = time.perf_counter,
        loop_cpu: Callable[[], float] = time.thread_time,
        observe_hold: Callable[[float], None] = lambda _: None,
    ) -> None:
        """``contended``: whether conversations are under way (messages were sent lately).
        ``loop_cpu``: CPU seconds of the calling thread; it is only ever called from the loop's
        own thread, so it measures the loop. ``observe_hold``: told how long each held
        connection waited (a metric)."""
        self._busy_share = busy_share
        self._max_hold_s = max_hold_s
        self._contended = contended
        self._per_tick = per_tick
        self._tick_s = tick_s
        self._clock = clock
        self._loop_cpu = loop_cpu
        self._observe_hold = observe_hold
        self._held: deque[tuple[float, Resume]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._let_in = 0  # this tick
        self._closed = False
        self.held_total = 0  # observable by tests and benches

    @property
    def holding(self) -> int:
        return len(self._held)

    @property
    def watching(self) -> bool:
        """Whether its task runs (only while it holds something or just let something in)."""
        return self._task is not None

    def admit(self, resume: Resume) -> bool:
        """True: the connection goes on now. False: it is held, and ``resume`` will be called
        from the event loop when its turn comes (at most ``max_hold_s`` from now)."""
        if self._closed:
            return True
        if not self._contended():
            # Behind whoever is already waiting (the next tick lets them all through).
            return not self._held or self._hold(resume)
        self._watch()
        if not self._held and not self._busy and self._let_in < self._per_tick:
            self._let_in += 1
            return True
        return self._hold(resume)

    def _hold(self, resume: Resume) -> bool:
        self._held.append((self._clock(), resume))
        self.held_total += 1
        self._watch()
        return False

    def _watch(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="accept-pacer")

    async def close(self) -> None:
        """Lets everything held through (the server is stopping: it closes them itself)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._release(len(self._held))

    async def _run(self) -> None:
        idle = 0
        try:
            while idle < _IDLE_TICKS:
                wall, cpu = self._clock(), self._loop_cpu()
                await asyncio.sleep(self._tick_s)
                elapsed = self._clock() - wall
                self._busy = self._loop_cpu() - cpu > self._busy_share * elapsed
                self._let_in = 0
                if not self._held:
                    idle += 1
                    continue
                idle = 0
                if not self._contended():
                    self._release(len(self._held))
                elif not self._busy:
                    self._release(self._per_tick)
                self._release_overdue()
        finally:
            if self._task is asyncio.current_task():
                self._task = None
            self._busy = False

    def _release_overdue(self) -> None:
        deadline = self._clock() - self._max_hold_s
        while self._held and self._held[0][0] <= deadline:
            self._release(1)

    def _release(self, count: int) -> None:
        now = self._clock()
        for _ in range(min(count, len(self._held))):
            held_at, resume = self._held.popleft()
            self._let_in += 1
            self._observe_hold(now - held_at)
            try:
                resume()
            except Exception:  # one connection's failure must not strand the others
                log.exception("accept_resume_failed")
