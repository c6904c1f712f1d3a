"""Routing's refusals, each with its HTTP status and stable code."""

from __future__ import annotations

from app.core.errors import Conflict, Forbidden, NotFound


class SessionTaken(Conflict):
    code = "session_taken"


class AtCapacity(Conflict):
    code = "at_capacity"


class NoOffer(Conflict):
    code = "no_offer"


class NotAssigned(Forbidden):
    code = "not_assigned"


class QueueEmpty(NotFound):
    code = "queue_empty"


class SupervisorsOnly(Forbidden):
    code = "supervisors_only"


class NotJoined(Forbidden):
    """A supervisor writes into a chat they do not hold only after joining it: the visitor must
    have been told (the ``supervisor_joined`` line) before a new person speaks."""

    code = "not_joined"


class SessionNotLive(Conflict):
    code = "session_not_live"
