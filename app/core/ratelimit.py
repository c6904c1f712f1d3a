"""The token bucket behind every rate limit (partner keys, socket frames)."""

from __future__ import annotations

from dataclasses import dataclass


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
