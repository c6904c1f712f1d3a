"""One signed webhook POST to a hotline partner, and the retry schedule between attempts."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import httpx

from app.core.db import utcnow
from app.escalation.partners import Partner
from app.escalation.service import AttemptResult
from app.escalation.signing import signed_headers

USER_AGENT = "Beacon-Handoff/1"


# Jitter needs no reproducible stream, and must not move the process-wide generator that other
# code watches (hypothesis, in the tests, fails a run whose global `random` moved under it).
_JITTER = random.SystemRandom()


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    rand: Callable[[float, float], float] = _JITTER.uniform,
) -> float:
    """Exponential backoff with jitter ("equal jitter"): the n-th retry waits between half and
    all of ``min(cap, base * 2**(n-1))``, so retries from many handoffs spread out but never
    collapse to zero."""
    ceiling: float = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + rand(0.0, ceiling / 2)


def headers_for(
    partner: Partner, handoff_id: uuid.UUID, body: bytes, attempt: int, now: float | None = None
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        # The handoff id: the same for every retry, from any instance, across restarts.
        "Idempotency-Key": str(handoff_id),
        "X-Beacon-Attempt": str(attempt),
        **signed_headers(partner.secret.get_secret_value(), body, now=now),
    }


async def post(
    client: httpx.AsyncClient,
    partner: Partner,
    *,
    handoff_id: uuid.UUID,
    body: bytes,
    attempt: int,
    timeout_s: float,
) -> AttemptResult:
    """Never raises for partner trouble: every way it can go wrong is an outcome to record."""
    started_at: datetime = utcnow()
    t0 = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        response = await client.post(
            str(partner.url),
            content=body,
            headers=headers_for(partner, handoff_id, body, attempt),
            timeout=timeout_s,
        )
        status_code = response.status_code
        outcome = "acknowledged" if 200 <= status_code < 300 else "http_error"
        if outcome != "acknowledged":
            error = f"HTTP {status_code}"
    except httpx.TimeoutException as exc:
        outcome, error = "timeout", type(exc).__name__
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        outcome, error = "connect_error", type(exc).__name__
    except httpx.HTTPError as exc:
        outcome, error = "connect_error", type(exc).__name__
    return AttemptResult(
        partner=partner.name,
        outcome=outcome,
        status_code=status_code,
        duration_ms=(time.perf_counter() - t0) * 1000,
        error=error,
        started_at=started_at,
    )
