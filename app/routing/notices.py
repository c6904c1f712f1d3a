"""What to tell whom after a routing change: ``Notice`` lists the boundary publishes inside its
transaction (heard only if it commits), and the frames offers and assignments are told with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.chat.models import ChatSession
from app.triage.types import Level


def volunteer_channel(volunteer_id: uuid.UUID | str) -> str:
    return f"volunteer:{volunteer_id}"


SUPERVISORS_CHANNEL = "supervisors"


ROUTING_CHANNEL = "routing"


@dataclass(frozen=True, slots=True)
class Notice:
    """A frame for a volunteer channel, or a visitor status change for a session."""

    channel: str | None = None
    frame: dict[str, Any] = field(default_factory=dict)
    # Set when the visitor of this session must get a `status` frame.
    visitor_status: tuple[uuid.UUID, str] | None = None


def visitor_notice(session_id: uuid.UUID, status: str) -> Notice:
    return Notice(visitor_status=(session_id, status))


def session_update(
    volunteer_id: uuid.UUID, session_id: uuid.UUID, status: str, **extra: Any
) -> Notice:
    return Notice(
        channel=volunteer_channel(volunteer_id),
        frame={"type": "session", "session_id": str(session_id), "status": status, **extra},
    )


ROUTING_WAKE = Notice(channel=ROUTING_CHANNEL, frame={"type": "wake"})


@dataclass(frozen=True, slots=True)
class OfferMade:
    assignment_id: int
    session_id: uuid.UUID
    volunteer_id: uuid.UUID
    urgency: int
    signals: list[str]
    waited_s: float
    expires_at: datetime
    kind: str

    def frame(self, now: datetime) -> dict[str, Any]:
        return {
            "type": "offer",
            "session_id": str(self.session_id),
            "urgency": Level(self.urgency).name,
            "urgency_value": self.urgency,
            "signals": self.signals,
            "waited_s": round(self.waited_s, 1),
            "expires_in_s": max(0.0, round((self.expires_at - now).total_seconds(), 1)),
            "kind": self.kind,
        }

    def notices(self, now: datetime) -> list[Notice]:
        return [
            Notice(channel=volunteer_channel(self.volunteer_id), frame=self.frame(now)),
            *([] if self.kind == "transfer" else [visitor_notice(self.session_id, "offered")]),
        ]


def assigned_frame(session: ChatSession, kind: str, now: datetime) -> dict[str, Any]:
    return {
        "type": "assigned",
        "session_id": str(session.id),
        "urgency": Level(session.urgency).name,
        "urgency_value": session.urgency,
        "signals": list(session.signals or []),
        "waited_s": round((now - session.waiting_since).total_seconds(), 1),
        "last_seq": session.last_seq,
        "locale": session.locale,
        "kind": kind,
    }
