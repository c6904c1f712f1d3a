"""Every ORM model, imported in one place so Alembic and create_all see the whole schema."""

from app.audit.models import Event
from app.chat.models import ChatSession, Message
from app.core.db import Base
from app.escalation.models import Handoff, HandoffAttempt, RescueRequest
from app.feedback.models import SurveyAnswer
from app.partners.models import ApiKey, TriageRequest
from app.resources.models import CannedReply, Resource
from app.routing.models import Assignment, Disposition, Volunteer

__all__ = [
    "ApiKey",
    "Assignment",
    "Base",
    "CannedReply",
    "ChatSession",
    "Disposition",
    "Event",
    "Handoff",
    "HandoffAttempt",
    "Message",
    "RescueRequest",
    "Resource",
    "SurveyAnswer",
    "TriageRequest",
    "Volunteer",
]
