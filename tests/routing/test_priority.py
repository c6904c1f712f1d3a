"""Effective priority: the pure rule, and the database ordering that must agree with it."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import utcnow
from app.routing.dispatch import priority_of, waiting_sessions
from app.routing.priority import effective_priority
from app.triage.types import Level
from tests.routing.helpers import add_session, hide_other_sessions

CEILING = 600.0


def test_urgency_first_then_wait() -> None:
    assert effective_priority(4, 0, ceiling_s=CEILING) > effective_priority(
        3, 5000, ceiling_s=CEILING
    )
    assert effective_priority(3, 0, ceiling_s=CEILING) > effective_priority(
        2, 10**6, ceiling_s=CEILING
    )
    assert effective_priority(1, 10, ceiling_s=CEILING) > effective_priority(
        1, 9, ceiling_s=CEILING
    )


def test_aging_reaches_moderate_at_the_ceiling() -> None:
    fresh_moderate = effective_priority(Level.moderate, 0, ceiling_s=CEILING)
    assert effective_priority(Level.none, CEILING - 1, ceiling_s=CEILING) < fresh_moderate
    assert effective_priority(Level.none, CEILING + 1, ceiling_s=CEILING) > fresh_moderate
    # ... but never overtakes high or imminent, however long it waits.
    assert effective_priority(Level.none, 10**7, ceiling_s=CEILING) < effective_priority(
        Level.high, 0, ceiling_s=CEILING
    )


@given(
    a=st.tuples(st.integers(0, 4), st.floats(0, 10**6)),
    b=st.tuples(st.integers(0, 4), st.floats(0, 10**6)),
)
def test_higher_urgency_never_loses_to_an_equal_wait(
    a: tuple[int, float], b: tuple[int, float]
) -> None:
    (ua, wa), (ub, wb) = a, b
    if ua > ub and wa >= wb:
        assert effective_priority(ua, wa, ceiling_s=CEILING) > effective_priority(
            ub, wb, ceiling_s=CEILING
        )


async def test_database_order_matches_the_rule(
    db: AsyncSession, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(queue_wait_ceiling_s=CEILING)
    await hide_other_sessions(db)
    now = utcnow()
    cases = [
        (0, 0),
        (0, 700),
        (1, 100),
        (2, 0),
        (2, 30),
        (3, 1),
        (4, 0),
        (4, 5),
        (1, 400),
        (0, 1200),
    ]
    for urgency, waited in cases:
        await add_session(db, urgency=urgency, waited_s=waited, now=now)
    ours = await waiting_sessions(db, settings)
    scores = [priority_of(s, now, settings) for s in ours]
    assert len(ours) == len(cases)
    assert scores == sorted(scores, reverse=True)
    assert ours[0].urgency == 4
    assert ours[1].urgency == 4
