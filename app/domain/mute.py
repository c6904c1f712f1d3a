"""What a supervisor's mute of an abusive visitor does (issue 14), as pure rules.

A mute never touches what the service owes the visitor: their messages are still stored, acked
and triaged, urgency still rises, escalation (the safety message, the handoff clock) still runs.
It only shields the *volunteer*: while it lasts, a visitor message is delivered to a volunteer's
socket with its text withheld (``text: null``, ``muted: true``; the level and signals are still
there, and the full text stays readable in the audited transcript). Supervisors always see the
text.

Never hide a rise to ``high``: a message triaged ``high`` or above is always delivered in full,
and a session at ``high`` or above is shielded only by a mute a second supervisor confirmed
(a mute made while it was calmer stops applying the moment it rises).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from app.triage.types import Level

HIGH: Final = int(Level.high)
MIN_DURATION_S: Final = 60
MAX_DURATION_S: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class ActiveMute:
    until: datetime
    confirmed: bool  # a second supervisor confirmed it


def needs_second_supervisor(session_urgency: int) -> bool:
    return session_urgency >= HIGH


def withheld(
    mute: ActiveMute | None,
    *,
    now: datetime,
    viewer_is_supervisor: bool,
    sender: str,
    level: int | None,
    session_urgency: int,
) -> bool:
    """Whether this message's text is withheld from this viewer now."""
    if mute is None or viewer_is_supervisor or sender != "visitor" or now >= mute.until:
        return False
    if level is None or level >= HIGH:
        return False  # not triaged yet, or a high+ message: always shown
    return not (needs_second_supervisor(session_urgency) and not mute.confirmed)
