"""An assignment row: one offer of a session to a volunteer, and the chat that followed.

::

    offered ──accept──► active ──► closed | released | requeued | transferred | session_ended
       └──► declined | expired | withdrawn | session_ended

Rows are created ``offered`` (pushed by the router, or a warm transfer) or straight ``active``
(a volunteer pulled the session: claim or "next").
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from app.domain.machine import StateMachine


class AssignmentStatus(StrEnum):
    offered = "offered"
    active = "active"
    declined = "declined"
    expired = "expired"
    withdrawn = "withdrawn"
    closed = "closed"
    released = "released"
    requeued = "requeued"
    transferred = "transferred"
    session_ended = "session_ended"


_A = AssignmentStatus
_OVER = frozenset(set(_A) - {_A.offered, _A.active})

ASSIGNMENT: Final = StateMachine(
    name="assignment",
    initial=_A.offered,
    moves={
        _A.offered: frozenset({_A.active, _A.declined, _A.expired, _A.withdrawn, _A.session_ended}),
        _A.active: frozenset(
            {_A.closed, _A.released, _A.requeued, _A.transferred, _A.session_ended}
        ),
        **{state: frozenset() for state in _OVER},
    },
)

# Holding a volunteer's slots: an offer awaiting an answer, or a chat in progress (was
# routing's ``OPEN_STATUSES``).
HOLDING: Final = frozenset({_A.offered, _A.active})
