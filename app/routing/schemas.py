"""Pydantic shapes of the dashboard REST API (separate from the ORM models)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.routing.assignments import DISPOSITIONS
from app.triage.types import Level

LevelName = Literal["none", "low", "moderate", "high", "imminent"]


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
    disposition: str = Field(description=f"one of {', '.join(DISPOSITIONS)}")
    risk_level: int | LevelName = Field(
        description="the volunteer's assessment; becomes the session urgency (audited)"
    )
    notes: str | None = Field(default=None, max_length=4000)

    @field_validator("disposition")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in DISPOSITIONS:
            raise ValueError(f"disposition must be one of {', '.join(DISPOSITIONS)}")
        return value

    @field_validator("risk_level")
    @classmethod
    def _level(cls, value: int | str) -> int:
        if isinstance(value, str):
            return int(Level[value])
        if not 0 <= value <= int(Level.imminent):
            raise ValueError("risk_level must be 0-4")
        return value

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
