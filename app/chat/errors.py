"""Chat errors. They are BeaconErrors, so a REST route (volunteers, later) renders them as HTTP
errors with the same stable codes the visitor socket sends in its ``error`` frames."""

from __future__ import annotations

from app.core.errors import BeaconError


class InvalidResumeToken(BeaconError):
    status_code = 401
    code = "invalid_resume_token"


class SessionNotFound(BeaconError):
    status_code = 404
    code = "session_not_found"


class SessionClosed(BeaconError):
    status_code = 409
    code = "session_closed"


class StoreUnavailable(BeaconError):
    """The message was NOT stored (and not acked); the client should resend it later."""

    status_code = 503
    code = "temporarily_unavailable"
