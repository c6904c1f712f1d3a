"""Effective priority (SPEC §4), where routing and the simulator have always imported it.

The rule itself is pure and lives in :mod:`app.domain.priority`; the same order as SQL
(``queue_order``, with its per-dialect ``epoch_seconds``) lives with the chat domain's queries in
:mod:`app.chat.repository`, so the visitor's queue position and routing agree by construction.
"""

from __future__ import annotations

from app.chat.repository import epoch_seconds, queue_order
from app.domain.priority import TIER_GAP_S, effective_priority, level_step_s

__all__ = ["TIER_GAP_S", "effective_priority", "epoch_seconds", "level_step_s", "queue_order"]
