"""Resources a volunteer may send into a chat (SPEC §1: helplines share reviewed resources)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, JSONType, UTCDateTime, new_uuid, utcnow


class Resource(Base):
    __tablename__ = "resources"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    title: Mapped[str] = mapped_column(String(120))
    # Primary language subtag ("en", "es"): what a visitor's locale is matched against.
    locale: Mapped[str] = mapped_column(String(16))
    topics: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Urgency level values (0-4) the resource suits; the partner API filters on these.
    levels: Mapped[list[int]] = mapped_column(JSONType, default=list)
    url: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint("url IS NOT NULL OR phone IS NOT NULL", name="url_or_phone"),
        Index("ix_resources_locale", "locale"),
    )


class CannedReply(Base):
    """A reviewed snippet a volunteer can send with one click, in one locale. ``text`` may hold
    the placeholders of app/resources/canned.py, filled for the volunteer who lists it."""

    __tablename__ = "canned_replies"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    locale: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_canned_replies_locale", "locale"),)
