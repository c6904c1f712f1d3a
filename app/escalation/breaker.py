"""A circuit breaker per partner: stop hammering a partner that is down, probe it again later.

closed --N consecutive failures--> open --cool-down--> half-open (one probe at a time)
half-open --probe succeeds--> closed; --probe fails--> open (cool-down starts again).

Kept in process memory on purpose: each instance learns a partner's health from its own
attempts, and a restart simply starts closed (the first attempt re-learns it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state = BreakerState.closed
        self.failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.open and self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.half_open
        return self._state

    def retry_after_s(self) -> float:
        """Seconds until a call may be tried again (0 when it may be tried now)."""
        if self.state is BreakerState.open:
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))
        return 0.0

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one probe is let through at a time."""
        state = self.state
        if state is BreakerState.closed:
            return True
        if state is BreakerState.open or self._probing:
            return False
        self._state = BreakerState.half_open
        self._probing = True
        return True

    def record_success(self) -> None:
        self._state = BreakerState.closed
        self.failures = 0
        self._probing = False

    def record_failure(self) -> None:
        self.failures += 1
        was_probe = self._probing or self._state is BreakerState.half_open
        self._probing = False
        if was_probe or self.failures >= self.threshold:
            self._state = BreakerState.open
            self._opened_at = self._clock()
