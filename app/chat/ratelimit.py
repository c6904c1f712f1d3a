"""Per-connection flood control: a token bucket plus a "strikes" counter that decides when a
client that keeps ignoring ``rate_limited`` errors gets disconnected."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


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
        self._tokens = float(burst)
        self._strikes = 0.0
        self._last = clock()

    def check(self) -> Verdict:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._strikes = max(0.0, self._strikes - elapsed * self._rate)
        if self._tokens >= 1.0 - 1e-9:  # float dust must not refuse a client at exactly `rate`
            self._tokens -= 1.0
            return Verdict.allow
        self._strikes += 1.0
        if self._strikes > self._disconnect_after:
            return Verdict.disconnect
        return Verdict.reject
