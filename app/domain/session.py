"""The visitor session's states, who may move it where, and the named sets the code asks about.

::

    waiting ──offer──► offered ──accept──► active ──transfer──► transferring
       ▲  ▲              │                  │  ▲                   │  │
       │  └──decline, expiry, withdrawal────┘  └──accepted/declined┘  │
       │  └──────────release, requeue (from active or transferring)───┘
       │  waiting ──claim / next──► active
       │
       ├── handed_off ◄── a partner accepted (from any live state); failed ──► waiting
       └── abandoned ◄── the visitor went away (waiting, active); came back ──► waiting
    closed ◄── wrap-up (a live state), the visitor's close or erasure (anything not over)

Only :func:`app.chat.lifecycle.transition` writes ``chat_sessions.status``, and only moves in
``SESSION`` (tests/test_architecture.py checks the first, the function checks the second).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from app.domain.machine import StateMachine


class SessionStatus(StrEnum):
    waiting = "waiting"
    offered = "offered"
    active = "active"
    transferring = "transferring"
    handed_off = "handed_off"
    closed = "closed"
    abandoned = "abandoned"


_S = SessionStatus

SESSION: Final = StateMachine(
    name="session",
    initial=_S.waiting,
    moves={
        _S.waiting: frozenset({_S.offered, _S.active, _S.handed_off, _S.closed, _S.abandoned}),
        _S.offered: frozenset({_S.waiting, _S.active, _S.handed_off, _S.closed}),
        _S.active: frozenset({_S.waiting, _S.transferring, _S.handed_off, _S.closed, _S.abandoned}),
        _S.transferring: frozenset({_S.active, _S.waiting, _S.handed_off, _S.closed}),
        _S.handed_off: frozenset({_S.waiting, _S.closed}),
        _S.closed: frozenset(),
        _S.abandoned: frozenset({_S.waiting}),
    },
)

# Over: nothing more happens in the session (an abandoned visitor may still come back, which
# reopens it; ``closed`` is final).
TERMINAL: Final = frozenset({_S.closed, _S.abandoned})
# Not over yet: the visitor may still close or erase it (was chat's ``OPEN_STATUSES``).
UNFINISHED: Final = SESSION.states - TERMINAL
# A person can still be helped here by a volunteer: offered, routed, held or being passed on.
LIVE: Final = frozenset({_S.waiting, _S.offered, _S.active, _S.transferring})
# Ended as far as volunteers are concerned: their offers and chats of it must end too.
ENDED: Final = frozenset({_S.closed, _S.abandoned, _S.handed_off})
# Software may give up on a visitor who dropped only here (never while handed off).
ABANDONABLE: Final = frozenset({_S.waiting, _S.active})
# Nobody is talking with the visitor yet (a warm transfer counts only once nobody holds it).
UNANSWERED: Final = frozenset({_S.waiting, _S.offered, _S.transferring})
# A volunteer may be in the chat.
HELD: Final = frozenset({_S.active, _S.transferring})
# Left the queue because someone (a volunteer or a partner) took them: the service rate.
SERVED: Final = frozenset({_S.offered, _S.active, _S.transferring, _S.handed_off})
# May be asked for active rescue (a handed-off visitor too).
RESCUABLE: Final = LIVE | {_S.handed_off}
