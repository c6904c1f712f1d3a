"""A handoff row is the escalation clock and the partner's side of the conversation.

::

    scheduled --deadline, nobody answered--> delivering --2xx--> delivered
        |                                       |                  |
        |--a volunteer took it--> cancelled     |--deadline--> undeliverable
                                                                   |
    delivering/delivered/undeliverable --partner: accepted--> accepted --connected--> connected
    delivering/delivered/accepted --partner: failed--> failed

``not_needed`` is created final: a held chat turned imminent (alerts and the in-chat safety
message, no clock), kept as the record that it happened, once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from app.domain.machine import StateMachine


class HandoffStatus(StrEnum):
    scheduled = "scheduled"
    delivering = "delivering"
    delivered = "delivered"
    accepted = "accepted"
    connected = "connected"
    failed = "failed"
    undeliverable = "undeliverable"
    cancelled = "cancelled"
    not_needed = "not_needed"


_H = HandoffStatus

HANDOFF: Final = StateMachine(
    name="handoff",
    initial=_H.scheduled,
    moves={
        _H.scheduled: frozenset({_H.delivering, _H.cancelled}),
        _H.delivering: frozenset(
            {_H.delivered, _H.undeliverable, _H.accepted, _H.connected, _H.failed}
        ),
        _H.delivered: frozenset({_H.accepted, _H.connected, _H.failed}),
        _H.undeliverable: frozenset({_H.accepted, _H.connected}),
        _H.accepted: frozenset({_H.connected, _H.failed}),
        _H.connected: frozenset(),
        _H.failed: frozenset(),
        _H.cancelled: frozenset(),
        _H.not_needed: frozenset(),
    },
)

# At most one per session in these (a partial unique index enforces it).
OPEN: Final = frozenset({_H.scheduled, _H.delivering, _H.delivered})
# Stood down because a volunteer was (or got) there: an unanswered session later needs a
# clock of its own.
STOOD_DOWN: Final = frozenset({_H.cancelled, _H.not_needed})
# What a partner's status callback may say.
CALLBACK: Final = frozenset({_H.accepted, _H.connected, _H.failed})
