"""Key format and hashing helpers, and the token bucket (with a controlled clock)."""

from __future__ import annotations

import pytest

from app.core.security import digest_secret, keyed_digest, new_secret, secret_matches
from app.partners.keys import issue_key, split_key
from app.partners.ratelimit import TokenBucketLimiter


def test_issued_keys_round_trip_and_carry_256_random_bits() -> None:
    keys = [issue_key() for _ in range(200)]
    for key in keys:
        assert split_key(key.token) == (key.prefix, key.secret)
        assert len(bytes.fromhex(key.secret)) == 32
    assert len({k.secret for k in keys}) == len(keys)
    assert len({k.prefix for k in keys}) == len(keys)


@pytest.mark.parametrize(
    "token",
    ["", "bk_", "bk__", "bk_abc_def", "xx_" + "0" * 16 + "_" + "0" * 64, "bk_" + "0" * 81],
)
def test_malformed_tokens_are_not_split(token: str) -> None:
    assert split_key(token) is None


def test_secret_matching() -> None:
    secret = new_secret()
    stored = digest_secret(secret)
    assert len(stored) == 64
    assert secret not in stored
    assert secret_matches(secret, stored)
    assert not secret_matches(new_secret(), stored)
    assert not secret_matches(secret, None)
    with pytest.raises(ValueError, match="128 bits"):
        new_secret(8)


def test_keyed_digest_depends_on_the_key() -> None:
    assert keyed_digest(b"a", b"text") != keyed_digest(b"b", b"text")
    assert keyed_digest(b"a", b"text") == keyed_digest(b"a", b"text")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_minute_of_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(clock)
    assert all(limiter.acquire("k", 60) is None for _ in range(60))
    wait = limiter.acquire("k", 60)
    assert wait == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.acquire("k", 60) == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("k", 60) is None
    assert limiter.acquire("k", 60) is not None


def test_buckets_are_per_key_and_follow_a_changed_limit() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(clock)
    assert limiter.acquire("a", 1) is None
    assert limiter.acquire("a", 1) == pytest.approx(60.0)
    assert limiter.acquire("b", 1) is None
    # A long idle period never banks more than one minute's allowance.
    clock.now += 3600
    assert limiter.acquire("b", 2) is None
    assert limiter.acquire("b", 2) is None
    assert limiter.acquire("b", 2) is not None
    with pytest.raises(ValueError, match="at least 1"):
        limiter.acquire("c", 0)
