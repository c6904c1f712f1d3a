"""Escalation's errors: each a BeaconError with its HTTP status and stable code."""

from __future__ import annotations

from app.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized


class HandoffNotFound(NotFound):
    code = "handoff_not_found"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class SessionNotLive(Conflict):
    code = "session_not_live"


class RescueNotFound(NotFound):
    code = "rescue_not_found"


class SupervisorsOnly(Forbidden):
    code = "supervisors_only"


class BadSignature(Unauthorized):
    code = "invalid_signature"


class StaleSignature(Unauthorized):
    code = "stale_timestamp"


class MissingSignature(Unauthorized):
    code = "missing_signature"


class InvalidCallback(BadRequest):
    code = "invalid_callback"


# signing.SignatureError codes -> the error the partner is answered with.
SIGNATURE_ERRORS: dict[str, type[Unauthorized]] = {
    "invalid_signature": BadSignature,
    "stale_timestamp": StaleSignature,
    "missing_signature": MissingSignature,
}
