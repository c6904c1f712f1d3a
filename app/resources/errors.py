"""The resource library's refusals, each with its HTTP status and stable code."""

from __future__ import annotations

from app.core.errors import Forbidden, NotFound, ValidationFailed


class ResourceNotFound(NotFound):
    code = "resource_not_found"


class AdminsOnly(Forbidden):
    code = "admins_only"


class InvalidLocale(ValidationFailed):
    code = "invalid_locale"


class InvalidQuery(ValidationFailed):
    code = "invalid_query"


class CannedReplyNotFound(NotFound):
    code = "canned_reply_not_found"


class UnknownPlaceholder(ValidationFailed):
    code = "unknown_placeholder"
