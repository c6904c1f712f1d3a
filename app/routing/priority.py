"""Effective priority of a waiting session (SPEC §4): urgency first, then time waited.

Two regimes, because software must never de-prioritise a ``high`` or ``imminent`` person:

* ``high`` and ``imminent`` are strict tiers above everything else (imminent before high);
  within a tier the longest wait goes first.
* ``none``, ``low`` and ``moderate`` share one aging queue. Each urgency level is worth
  ``ceiling_s / 2`` seconds of waiting, so after ``ceiling_s`` a ``none`` session ranks with a
  ``moderate`` one that has just arrived: a stream of more urgent (but not high) arrivals can
  delay a calm visitor by at most the ceiling, never starve them.

Aging by a constant offset per level keeps the order independent of "now": comparing two
sessions never flips as time passes unless one of them changes urgency. That is what lets the
database sort the queue (``queue_order``) with the same rule as ``effective_priority``, and it
means a rise in urgency re-orders the queue at once simply because the row changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, case, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from app.triage.types import Level

# Larger than any real wait, so a tier always outranks the aging queue below it.
_TIER_GAP_S = 1e9


def level_step_s(ceiling_s: float) -> float:
    """Seconds of waiting one urgency level is worth in the aging queue."""
    return ceiling_s / int(Level.moderate)


def effective_priority(urgency: int, waited_s: float, *, ceiling_s: float) -> float:
    """A score in 'virtual seconds of waiting'; the higher score is offered first."""
    if urgency >= Level.high:
        return _TIER_GAP_S * (urgency - int(Level.moderate)) + waited_s
    return urgency * level_step_s(ceiling_s) + waited_s


class epoch_seconds(FunctionElement[float]):  # noqa: N801 - SQL function naming
    """Seconds since 1970 of a timestamp column, on Postgres and SQLite alike."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds, "postgresql")
def _epoch_pg(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


def queue_order(
    urgency: ColumnElement[int] | QueryableAttribute[int],
    waiting_since: ColumnElement[datetime] | QueryableAttribute[datetime],
    *,
    ceiling_s: float,
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """ORDER BY terms equivalent to sorting by ``effective_priority`` descending."""
    high = int(Level.high)
    tier = case((urgency >= high, urgency), else_=literal(0)).desc()
    offset = case((urgency >= high, literal(0.0)), else_=urgency * level_step_s(ceiling_s))
    effective_since = (epoch_seconds(waiting_since) - offset).asc()
    return tier, effective_since
