"""Survey answers: numbers only, one row per session, kept apart from the transcript (an
erasure or the retention purge clears text; these hold none)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, SmallInteger, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class SurveyAnswer(Base):
    __tablename__ = "survey_answers"

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("chat_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    # "Did this chat help?" and "Do you feel safer now?", 1 (not at all) to 5 (very much);
    # NULL when the visitor skipped that question.
    helped: Mapped[int | None] = mapped_column(SmallInteger)
    safer: Mapped[int | None] = mapped_column(SmallInteger)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint("helped BETWEEN 1 AND 5", name="helped_scale"),
        CheckConstraint("safer BETWEEN 1 AND 5", name="safer_scale"),
        CheckConstraint("helped IS NOT NULL OR safer IS NOT NULL", name="something_answered"),
    )
