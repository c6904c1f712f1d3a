"""Escalation's use cases, each in the caller's transaction (services never commit).

The ``handoffs`` row is the whole state machine (:mod:`app.domain.handoff` has the table;
:func:`app.escalation.lifecycle.advance` is its one writer). The use cases live by concern:

* :mod:`~app.escalation.clock` — the clock starts for an unanswered urgent session, a held chat
  turned imminent alerts its volunteer, a clock that ran out delivers or stands down;
* :mod:`~app.escalation.owed` — the safety message and notices the visitor is owed;
* :mod:`~app.escalation.attempts` — leased delivery attempts and their outcome;
* :mod:`~app.escalation.callbacks` — the partner's signed status callback;
* :mod:`~app.escalation.requests` — handoff on request, two-step active rescue;
* :mod:`~app.escalation.repository` — their SQL; :mod:`~app.escalation.alerts` — what
  supervisors hear and the audit rows.

Every change is an audit event; whatever supervisors must see is published on the supervisors
channel inside the same transaction (heard only if it commits). This module gathers the names
callers have always used (``service.escalate``...).
"""

from __future__ import annotations

from app.escalation.alerts import alert
from app.escalation.attempts import (
    AttemptResult,
    Claimed,
    claim_deliveries,
    record_attempt,
    release_deliveries,
)
from app.escalation.callbacks import apply_partner_status
from app.escalation.clock import alert_in_chat, build_payload, due_handoffs, escalate, payload_bytes
from app.escalation.errors import (
    HandoffNotFound,
    InvalidTransition,
    RescueNotFound,
    SessionNotLive,
    SupervisorsOnly,
)
from app.escalation.owed import SAFETY_KINDS, Owed, message_sent, owed_messages
from app.escalation.policy import Policy
from app.escalation.repository import (
    HELD,
    LIVE,
    STOOD_DOWN,
    UNANSWERED,
    any_open_handoff,
    attempts_of,
    chats_turned_imminent,
    get_handoff,
    partner_for,
    partners_of,
    session_locale,
    sessions_to_escalate,
)
from app.escalation.requests import decide_rescue, request_handoff, request_rescue

__all__ = [
    "HELD",
    "LIVE",
    "SAFETY_KINDS",
    "STOOD_DOWN",
    "UNANSWERED",
    "AttemptResult",
    "Claimed",
    "HandoffNotFound",
    "InvalidTransition",
    "Owed",
    "Policy",
    "RescueNotFound",
    "SessionNotLive",
    "SupervisorsOnly",
    "alert",
    "alert_in_chat",
    "any_open_handoff",
    "apply_partner_status",
    "attempts_of",
    "build_payload",
    "chats_turned_imminent",
    "claim_deliveries",
    "decide_rescue",
    "due_handoffs",
    "escalate",
    "get_handoff",
    "message_sent",
    "owed_messages",
    "partner_for",
    "partners_of",
    "payload_bytes",
    "record_attempt",
    "release_deliveries",
    "request_handoff",
    "request_rescue",
    "session_locale",
    "sessions_to_escalate",
]
