"""Volunteer accounts, offers/assignments and wrap-up dispositions.

The ``load`` column on a volunteer counts the slots held by their open offers plus active chats
(a ``high``+ chat may hold more than one; each assignment records its own). It only ever
changes through conditional UPDATEs in the same transaction as the assignment that causes it, so
capacity holds even when several processes route at once (see ``app.routing.assignments``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, JSONType, UTCDateTime, new_uuid, utcnow

ROLES = ("volunteer", "supervisor", "admin")
PRESENCE = ("online", "away", "offline")


class Volunteer(Base):
    __tablename__ = "volunteers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="volunteer")
    languages: Mapped[list[str]] = mapped_column(JSONType, default=list)
    capacity: Mapped[int] = mapped_column(Integer, default=3)
    load: Mapped[int] = mapped_column(Integer, default=0)
    # SHA-256 of the bearer token (>=256 bits random, so a fast hash is enough to look it up).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    presence: Mapped[str] = mapped_column(String(16), default="offline")
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the volunteer went offline; their chats return to the queue after a grace period.
    offline_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When a slot last freed up: "longest idle" routing prefers the earliest.
    idle_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint("load >= 0", name="load_not_negative"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("role IN ('volunteer', 'supervisor', 'admin')", name="role_known"),
    )


class Assignment(Base):
    """One offer of a session to a volunteer, and, if accepted, the chat that followed."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE")
    )
    volunteer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("volunteers.id", ondelete="CASCADE"))
    # app.domain.assignment: offered -> active -> closed|released|transferred|requeued|...
    status: Mapped[str] = mapped_column(String(16), default="offered")
    # route (pushed by the router), pull ("next"/claim), transfer (warm, from another volunteer)
    kind: Mapped[str] = mapped_column(String(16), default="route")
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # Slots of the volunteer's capacity this offer/chat holds (``app.routing.assignments``):
    # ending it gives back exactly this, whatever the session's urgency became meanwhile.
    slots: Mapped[int] = mapped_column(SmallInteger, default=1, server_default=text("1"))

    __table_args__ = (
        CheckConstraint("slots >= 1", name="slots_positive"),
        # The database itself refuses a second chat holder or a second pending offer per session.
        Index(
            "uq_assignments_one_active_per_session",
            "session_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index(
            "uq_assignments_one_offer_per_session",
            "session_id",
            unique=True,
            postgresql_where=text("status = 'offered'"),
            sqlite_where=text("status = 'offered'"),
        ),
        Index("ix_assignments_volunteer_status", "volunteer_id", "status"),
        Index("ix_assignments_status_expires", "status", "expires_at"),
    )


class Disposition(Base):
    """Wrap-up of a chat: outcome code, notes and the volunteer's own risk assessment."""

    __tablename__ = "dispositions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE")
    )
    volunteer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("volunteers.id", ondelete="SET NULL")
    )
    code: Mapped[str] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    risk_level: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_dispositions_session_id", "session_id"),
        # Retention purges notes past the period (app/retention).
        Index(
            "ix_dispositions_unpurged_created_at",
            "created_at",
            postgresql_where=text("notes IS NOT NULL"),
            sqlite_where=text("notes IS NOT NULL"),
        ),
    )


class SessionSupervisor(Base):
    """A supervisor who joined a chat (visible: the visitor was told). Observing is not stored
    here: it is silent, per socket, and only audited."""

    __tablename__ = "session_supervisors"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    supervisor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("volunteers.id", ondelete="CASCADE"), primary_key=True
    )
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SessionMute(Base):
    """A supervisor's mute of an abusive visitor (app/routing/mutes.py, app/domain/mute.py):
    ``requested`` (high+: a second supervisor must confirm) → ``active`` until ``until`` →
    ``lifted``; or ``requested`` → ``cancelled``."""

    __tablename__ = "session_mutes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    duration_s: Mapped[int] = mapped_column(Integer)
    urgency_at_request: Mapped[int] = mapped_column(SmallInteger)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lifted_by: Mapped[str | None] = mapped_column(String(64))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_session_mutes_session", "session_id", "status"),)
