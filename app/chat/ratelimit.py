"""Per-connection flood control: a token bucket plus a "strikes" counter that decides when a
client that keeps ignoring ``rate_limited`` errors gets disconnected."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum

from app.core.ratelimit import TokenBucket


class Verdict(Enum):
    allow = "allow"
    reject = "reject"  # answer with a rate_limited error, keep the connection
    disconnect = "disconnect"  # the client keeps flooding: close 1008


class FrameRateLimiter:
    """``rate`` frames/s sustained, ``burst`` at once. Each refused frame adds a strike; strikes
    drain at ``rate`` per second too, so a client that slows down is forgiven, while one that
    keeps sending at full speed crosses ``disconnect_after`` strikes within seconds."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        disconnect_after: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._disconnect_after = float(disconnect_after)
        self._clock = clock
        self._bucket = TokenBucket(tokens=float(burst), updated=clock())
        self._strikes = 0.0

    def check(self) -> Verdict:
        now = self._clock()
        elapsed = max(0.0, now - self._bucket.updated)
        self._strikes = max(0.0, self._strikes - elapsed * self._rate)
        if self._bucket.take(now, rate=self._rate, capacity=self._burst) is None:
            return Verdict.allow
        self._strikes += 1.0
        if self._strikes > self._disconnect_after:
            return Verdict.disconnect
        return Verdict.reject
