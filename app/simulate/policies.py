"""The queue policies a simulation compares.

``beacon`` is Beacon's own: the waiting order is :func:`app.routing.dispatch.priority_of` (urgency
tiers, continuous aging below ``high``), and the escalation clock of
:class:`app.escalation.service.Policy` hands unanswered urgent sessions to a partner. The two
baselines are what other helpline tools do and differ from it in those two respects only —
eligibility, slot weights, offers and declines are Beacon's (``plan_offers``) for all three, so
the comparison isolates the ordering and the handoff:

* ``fifo``: first come, first served, blind to urgency (Chatwoot's round-robin assignment);
* ``static``: strict priority by urgency, oldest first within a level, no aging and no handoff
  clock (Rocket.Chat's priority queue).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.core.config import Settings
from app.routing.dispatch import Waiting, priority_of

SortKey = Callable[[Waiting, datetime, Settings], tuple[float, ...]]


def _beacon(session: Waiting, now: datetime, settings: Settings) -> tuple[float, ...]:
    return (priority_of(session, now, settings),)


def _fifo(session: Waiting, now: datetime, settings: Settings) -> tuple[float, ...]:
    return (session.waited_s(now),)


def _static(session: Waiting, now: datetime, settings: Settings) -> tuple[float, ...]:
    return (float(session.urgency), session.waited_s(now))


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    name: str
    label: str
    # Larger first; ties go to the smaller session id, as the server's ORDER BY does.
    key: SortKey
    # Whether unanswered urgent sessions get the handoff clock (SPEC §5).
    escalates: bool

    def order(self, queue: list[Waiting], now: datetime, settings: Settings) -> list[Waiting]:
        by_id = sorted(queue, key=lambda s: s.id)
        return sorted(by_id, key=lambda s: self.key(s, now, settings), reverse=True)


POLICIES: dict[str, QueuePolicy] = {
    "fifo": QueuePolicy("fifo", "FIFO (Chatwoot)", _fifo, escalates=False),
    "static": QueuePolicy("static", "static priority (Rocket.Chat)", _static, escalates=False),
    "beacon": QueuePolicy("beacon", "Beacon", _beacon, escalates=True),
}
