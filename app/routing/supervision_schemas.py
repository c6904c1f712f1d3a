"""REST shapes of supervision (app/routers/supervision.py): separate from the ORM rows."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from app.chat.models import Whisper
from app.routing.frames import storable


class WhisperRequest(BaseModel):
    client_msg_id: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=8000)

    @field_validator("text", "client_msg_id")
    @classmethod
    def _storable(cls, value: str) -> str:
        return storable(value)


class WhisperView(BaseModel):
    whisper_id: int
    session_id: uuid.UUID
    author_id: str
    author_role: str
    client_msg_id: str
    text: str | None
    sent_at: datetime
    duplicate: bool = False

    @classmethod
    def of(cls, row: Whisper, *, duplicate: bool = False) -> WhisperView:
        return cls(
            whisper_id=row.id,
            session_id=row.session_id,
            author_id=row.author_id,
            author_role=row.author_role,
            client_msg_id=row.client_msg_id,
            text=row.text,
            sent_at=row.sent_at,
            duplicate=duplicate,
        )


class WhisperList(BaseModel):
    session_id: uuid.UUID
    whispers: list[WhisperView]


class JoinResult(BaseModel):
    session_id: uuid.UUID
    joined: bool
    seq: int  # the visitor-visible "a supervisor joined" line


class ConsentAsked(BaseModel):
    session_id: uuid.UUID
    seq: int  # the question, a system message of kind "consent"
