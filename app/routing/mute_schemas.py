"""REST shapes of mutes (app/routers/supervision.py): separate from the ORM row."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from app.domain.mute import MAX_DURATION_S, MIN_DURATION_S
from app.routing.frames import storable
from app.routing.models import SessionMute


class MuteRequest(BaseModel):
    duration_s: int = Field(ge=MIN_DURATION_S, le=MAX_DURATION_S)
    reason: str = Field(min_length=1, max_length=200)

    @field_validator("reason")
    @classmethod
    def _storable(cls, value: str) -> str:
        return storable(value)


class MuteView(BaseModel):
    mute_id: uuid.UUID
    session_id: uuid.UUID
    status: str  # requested | active | lifted | cancelled
    reason: str
    duration_s: int
    requested_by: str
    requested_at: datetime
    confirmed_by: str | None
    until: datetime | None
    needs_confirmation: bool

    @classmethod
    def of(cls, row: SessionMute) -> MuteView:
        return cls(
            mute_id=row.id,
            session_id=row.session_id,
            status=row.status,
            reason=row.reason,
            duration_s=row.duration_s,
            requested_by=row.requested_by,
            requested_at=row.requested_at,
            confirmed_by=row.confirmed_by,
            until=row.until,
            needs_confirmation=row.status == "requested",
        )
