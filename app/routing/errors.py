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
