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
database sort the queue (:func:`app.chat.repository.queue_order`) with the same rule as
``effective_priority``, and it means a rise in urgency re-orders the queue at once simply
because the row changed.
"""

from __future__ import annotations

from typing import Final

from app.triage.types import Level

# Larger than any real wait, so a tier always outranks the aging queue below it.
TIER_GAP_S: Final = 1e9


def level_step_s(ceiling_s: float) -> float:
    """Seconds of waiting one urgency level is worth in the aging queue."""
    return ceiling_s / int(Level.moderate)


def effective_priority(urgency: int, waited_s: float, *, ceiling_s: float) -> float:
    """A score in 'virtual seconds of waiting'; the higher score is offered first."""
    if urgency >= Level.high:
        return TIER_GAP_S * (urgency - int(Level.moderate)) + waited_s
    return urgency * level_step_s(ceiling_s) + waited_s
