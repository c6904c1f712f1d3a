from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, JSONType, UTCDateTime, new_uuid, utcnow


class ChatSession(Base):
    __tablename__ = "chat_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    # SHA-256 of the resume token: the token itself is never stored.
    resume_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    # Max over message levels; only a recorded human assessment may lower it.
    urgency: Mapped[int] = mapped_column(SmallInteger, default=0)
    signals: Mapped[list[str]] = mapped_column(JSONType, default=list)
    locale: Mapped[str | None] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(32))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Start of the current wait; kept across requeues so a returned visitor keeps their place.
    waiting_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    visitor_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The visitor's first message (NULL: a hello alone). Only then does the session join the
    # queue, so drive-by sessions that never speak put nobody behind anyone (SPEC §9).
    visitor_spoke_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    visitor_connected: Mapped[bool] = mapped_column(default=False)
    token_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A high+ visitor found gone past the grace period (supervisors alerted); see routing.at_risk.
    visitor_lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Consent for handoff extras (app/chat/consent.py): asked in the chat, the visitor's last
    # answer, and the number they chose to share (personal data: cleared by erasure/retention).
    consent_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consent_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consent_transcript: Mapped[bool | None] = mapped_column()
    consent_contact: Mapped[bool | None] = mapped_column()
    contact_phone: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_chat_sessions_queue", "status", "urgency", "waiting_since"),)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(16))  # visitor|volunteer|system
    sender_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(16))  # e.g. "safety" for system messages
    client_msg_id: Mapped[str | None] = mapped_column(String(64))
    # NULL after the visitor erases the transcript or retention purges it.
    text: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    level: Mapped[int | None] = mapped_column(SmallInteger)
    score: Mapped[float | None] = mapped_column(Float)
    signals: Mapped[list[str] | None] = mapped_column(JSONType)
    model_version: Mapped[str | None] = mapped_column(String(64))
    triage_ms: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("session_id", "seq"),
        UniqueConstraint("session_id", "sender", "client_msg_id"),
        # Retention finds text still stored past the period; purged rows leave the index.
        # (``sql_text``: inside this class body ``text`` is the column.)
        Index(
            "ix_messages_unpurged_sent_at",
            "sent_at",
            postgresql_where=sql_text("text IS NOT NULL"),
            sqlite_where=sql_text("text IS NOT NULL"),
        ),
    )


class Whisper(Base):
    """A note between the staff on a chat (a supervisor and the volunteer): stored so that it is
    auditable, in a table of its own so that no visitor read (transcript, replay, the partner's
    transcript) can ever select it. Text is purged with the messages' (retention, erasure)."""

    __tablename__ = "whispers"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE")
    )
    author_id: Mapped[str] = mapped_column(String(64))
    author_role: Mapped[str] = mapped_column(String(16))
    client_msg_id: Mapped[str] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("session_id", "author_id", "client_msg_id"),
        Index("ix_whispers_session", "session_id", "id"),
    )
