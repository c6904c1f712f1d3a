"""Per-key token buckets, in process memory.

Scope: one bucket per API key *per instance*. With N instances behind a load balancer a key can
reach up to N times its limit; that is acceptable for a guard against runaway clients (the limit
protects CPU, which is per instance too), and it keeps the hot path free of a database write per
request. A request counts as one token whatever its batch size; the batch cap bounds its cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from app.core.ratelimit import TokenBucket


class TokenBucketLimiter:
    """Capacity = one minute's allowance (a full burst), refilled continuously."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[Hashable, TokenBucket] = {}

    def acquire(self, key: Hashable, per_minute: int) -> float | None:
        """Takes one token: None if allowed, else the seconds until one will be available."""
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(tokens=float(per_minute), updated=now)
        return bucket.take(now, rate=per_minute / 60.0, capacity=float(per_minute))
