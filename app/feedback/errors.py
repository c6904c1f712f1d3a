"""The survey's refusals, each with its HTTP status and stable code."""

from __future__ import annotations

from app.core.errors import Conflict


class ChatNotEnded(Conflict):
    code = "chat_not_ended"


class SurveyAlreadyAnswered(Conflict):
    code = "survey_already_answered"
