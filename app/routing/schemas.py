"""Pydantic shapes of the dashboard REST API (separate from the ORM models)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from app.chat.cards import ResourceCard
from app.feedback.schemas import SurveySummary
from app.routing.claims import DISPOSITIONS
from app.triage.types import Level

LevelName = Literal["none", "low", "moderate", "high", "imminent"]


# Wrap-up checks shared by the REST body and the ``close`` frame, so both refuse the same input.
def known_disposition(value: str) -> str:
    if value not in DISPOSITIONS:
        raise ValueError(f"disposition must be one of {', '.join(DISPOSITIONS)}")
    return value


def risk_level_value(value: int | str) -> int:
    if isinstance(value, str):
        if value not in Level.__members__:
            raise ValueError("risk_level must be a level name or 0-4")
        return int(Level[value])
    if not 0 <= value <= int(Level.imminent):
        raise ValueError("risk_level must be 0-4")
    return value


Disposition = Annotated[str, AfterValidator(known_disposition)]
RiskLevel = Annotated[int | LevelName, AfterValidator(risk_level_value)]
"""The volunteer's own assessment, as a level name or 0-4 (validated to an int)."""


class QueueItem(BaseModel):
    session_id: uuid.UUID
    urgency: LevelName
    urgency_value: int
    signals: list[str]
    waited_s: float
    language: str | None
    position: int = Field(description="1-based place in effective-priority order")
    effective_priority: float


class QueueListing(BaseModel):
    counts: dict[str, int]
    items: list[QueueItem]


class TranscriptMessage(BaseModel):
    seq: int
    sender: str
    text: str | None
    sent_at: datetime
    kind: str | None = None
    level: int | None = None
    signals: list[str] | None = None
    resource: ResourceCard | None = None  # kind "resource": the card sent (app/chat/cards.py)


class SessionSummary(BaseModel):
    session_id: uuid.UUID
    status: str
    urgency: LevelName
    urgency_value: int
    signals: list[str]
    locale: str | None
    waiting_since: datetime
    last_seq: int
    volunteer_id: uuid.UUID | None = None


class SessionDetail(SessionSummary):
    transcript: list[TranscriptMessage]


class SessionList(BaseModel):
    sessions: list[SessionSummary]


class ActionResult(BaseModel):
    session_id: uuid.UUID
    status: str


class TransferRequest(BaseModel):
    to_volunteer_id: uuid.UUID | None = None
    to_supervisor: bool = False


class CloseRequest(BaseModel):
    disposition: Disposition = Field(description=f"one of {', '.join(DISPOSITIONS)}")
    risk_level: RiskLevel = Field(
        description="the volunteer's assessment; becomes the session urgency (audited)"
    )
    notes: str | None = Field(default=None, max_length=4000)

    @property
    def risk_value(self) -> int:
        return int(self.risk_level)


class PresenceRequest(BaseModel):
    status: Literal["online", "away", "offline"]


class VolunteerStatus(BaseModel):
    volunteer_id: uuid.UUID
    name: str
    role: str
    languages: list[str]
    capacity: int
    load: int
    presence: str
    last_heartbeat_at: datetime | None
    sessions: list[uuid.UUID]
    offers: list[uuid.UUID]


class VolunteerList(BaseModel):
    volunteers: list[VolunteerStatus]


class MetricsSummary(BaseModel):
    queue: dict[str, int] = Field(description="waiting sessions by urgency")
    longest_wait_s: dict[str, float] = Field(description="longest current wait by urgency")
    sessions_by_status: dict[str, int]
    volunteers_by_presence: dict[str, int]
    free_slots_online: int
    offers_pending: int
    survey: SurveySummary | None = Field(None, description="post-chat survey answers so far")
