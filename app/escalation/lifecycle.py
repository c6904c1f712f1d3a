"""The one writer of ``handoffs.status``: :func:`advance`, checked against
:data:`app.domain.handoff.HANDOFF` (rows are created by the clock and the requests, in the
machine's initial state or, for the in-chat record, straight in ``not_needed``)."""

from __future__ import annotations

from datetime import datetime

from app.domain.handoff import HANDOFF, HandoffStatus
from app.escalation.models import Handoff


def advance(handoff: Handoff, to: HandoffStatus, now: datetime) -> HandoffStatus:
    """Move a handoff row the caller holds locked to ``to``; returns where it was. A move
    outside the table raises ``IllegalTransition`` (a bug, never a partner's mistake: their
    callbacks are checked with :func:`may_become` first)."""
    (previous,) = HANDOFF.check([handoff.status], to)
    handoff.status = to.value
    handoff.updated_at = now
    return previous


def may_become(handoff: Handoff, to: HandoffStatus) -> bool:
    return HANDOFF.allows(handoff.status, to)
