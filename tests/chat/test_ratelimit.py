from __future__ import annotations

from app.chat.ratelimit import FrameRateLimiter, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill() -> None:
    clock = Clock()
    limiter = FrameRateLimiter(rate=2.0, burst=3, disconnect_after=100, clock=clock)
    assert [limiter.check() for _ in range(4)] == [Verdict.allow] * 3 + [Verdict.reject]
    clock.now += 0.5  # one token back
    assert limiter.check() is Verdict.allow
    assert limiter.check() is Verdict.reject


def test_sustained_rate_is_allowed_forever() -> None:
    clock = Clock()
    limiter = FrameRateLimiter(rate=5.0, burst=1, disconnect_after=3, clock=clock)
    for _ in range(1000):
        clock.now += 0.2
        assert limiter.check() is Verdict.allow


def test_flood_disconnects_but_slowing_down_is_forgiven() -> None:
    clock = Clock()
    limiter = FrameRateLimiter(rate=1.0, burst=2, disconnect_after=5, clock=clock)
    verdicts = [limiter.check() for _ in range(8)]
    assert verdicts[:2] == [Verdict.allow] * 2
    assert verdicts[2:7] == [Verdict.reject] * 5
    assert verdicts[7] is Verdict.disconnect

    forgiving = FrameRateLimiter(rate=1.0, burst=2, disconnect_after=5, clock=clock)
    for _ in range(6):
        forgiving.check()  # 4 strikes
    clock.now += 10  # quiet for a while: strikes drain, tokens refill
    assert [forgiving.check() for _ in range(3)] == [Verdict.allow, Verdict.allow, Verdict.reject]
