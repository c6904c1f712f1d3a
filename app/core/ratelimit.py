"""Rate limits: the token bucket behind every one (partner keys, socket frames), and the one
flood guard both WebSocket protocols use."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(slots=True)
class TokenBucket:
    """Tokens refill continuously at ``rate`` per second up to ``capacity``; a call takes one.

    Rate and capacity are passed per call so that a changed limit applies at once to a bucket
    filled under the old one."""

    tokens: float
    updated: float

    def take(self, now: float, *, rate: float, capacity: float) -> float | None:
        """Takes one token: None if allowed, else the seconds until one will be available."""
        elapsed = max(0.0, now - self.updated)
        self.updated = now
        self.tokens = min(capacity, self.tokens + elapsed * rate)
        if self.tokens >= 1.0 - 1e-9:  # float dust must not refuse a client at exactly `rate`
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / rate


class Verdict(Enum):
    allow = "allow"
    reject = "reject"  # answer with a rate_limited error, keep the connection
    disconnect = "disconnect"  # the client keeps flooding: close 1008


class FloodGuard:
    """Per-connection flood control (visitor and volunteer sockets alike, each with its own
    settings): ``rate`` frames/s sustained, ``burst`` at once. Each refused frame adds a strike;
    strikes drain at ``rate`` per second too, so a client that slows down is forgiven, while one
    that keeps sending at full speed crosses ``disconnect_after`` strikes within seconds.

    The caller passes the time (sans-I/O protocols are given ``now``), so it is tested with a
    plain number."""

    __slots__ = ("_bucket", "_burst", "_disconnect_after", "_rate", "_strikes")

    def __init__(self, *, rate: float, burst: int, disconnect_after: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._disconnect_after = float(disconnect_after)
        self._bucket = TokenBucket(tokens=float(burst), updated=now)
        self._strikes = 0.0

    def check(self, now: float) -> Verdict:
        elapsed = max(0.0, now - self._bucket.updated)
        self._strikes = max(0.0, self._strikes - elapsed * self._rate)
        if self._bucket.take(now, rate=self._rate, capacity=self._burst) is None:
            return Verdict.allow
        self._strikes += 1.0
        if self._strikes > self._disconnect_after:
            return Verdict.disconnect
        return Verdict.reject
