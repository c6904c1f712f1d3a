"""The flood guard both sockets use (app/core/ratelimit.py), on a plain clock."""

from __future__ import annotations

from app.core.ratelimit import FloodGuard, Verdict


def test_burst_then_refill() -> None:
    guard = FloodGuard(rate=2.0, burst=3, disconnect_after=100, now=0.0)
    assert [guard.check(0.0) for _ in range(4)] == [Verdict.allow] * 3 + [Verdict.reject]
    assert guard.check(0.5) is Verdict.allow  # one token back
    assert guard.check(0.5) is Verdict.reject


def test_sustained_rate_is_allowed_forever() -> None:
    guard = FloodGuard(rate=5.0, burst=1, disconnect_after=3, now=0.0)
    for step in range(1, 1001):
        assert guard.check(step * 0.2) is Verdict.allow


def test_flood_disconnects_but_slowing_down_is_forgiven() -> None:
    guard = FloodGuard(rate=1.0, burst=2, disconnect_after=5, now=0.0)
    verdicts = [guard.check(0.0) for _ in range(8)]
    assert verdicts[:2] == [Verdict.allow] * 2
    assert verdicts[2:7] == [Verdict.reject] * 5
    assert verdicts[7] is Verdict.disconnect

    forgiving = FloodGuard(rate=1.0, burst=2, disconnect_after=5, now=0.0)
    for _ in range(6):
        forgiving.check(0.0)  # 4 strikes
    # Quiet for a while: strikes drain, tokens refill.
    assert [forgiving.check(10.0) for _ in range(3)] == [
        Verdict.allow,
        Verdict.allow,
        Verdict.reject,
    ]
