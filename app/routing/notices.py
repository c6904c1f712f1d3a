"""What to tell whom after a routing change: ``Notice`` lists the boundary publishes inside its
transaction (heard only if it commits), and the server frames offers and assignments are told
with (typed like the socket's own, :class:`app.core.wire.ServerFrame`; a notice carries the
JSON object, since it crosses instances on the bus)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from app.chat.models import ChatSession
from app.core.wire import ServerFrame
from app.triage.types import Level


class OfferOut(ServerFrame):
    type: Literal["offer"] = "offer"
    session_id: str
    urgency: str
    urgency_value: int
    signals: list[str]
    waited_s: float
    expires_in_s: float
    kind: str  # route | transfer


class AssignedOut(ServerFrame):
    type: Literal["assigned"] = "assigned"
    session_id: str
    urgency: str
    urgency_value: int
    signals: list[str]
    waited_s: float
    last_seq: int
    locale: str | None
    kind: str  # route | pull | transfer


class HoldingOut(ServerFrame):
    """What happened to an offer or chat of this volunteer (``closed``, ``released``,
    ``offer_expired``, ``transferred`` with ``to``...)."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset({"to"})
    type: Literal["session"] = "session"
    session_id: str
    status: str
    to: str | None = None


def payload(frame: ServerFrame) -> dict[str, Any]:
    """The frame as the JSON object the bus carries (the same fields ``dump()`` sends)."""
    absent = {name for name in frame.omit_if_none if getattr(frame, name) is None}
    return frame.model_dump(mode="json", exclude=absent or None)


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
    volunteer_id: uuid.UUID, session_id: uuid.UUID, status: str, *, to: str | None = None
) -> Notice:
    frame = HoldingOut(session_id=str(session_id), status=status, to=to)
    return Notice(channel=volunteer_channel(volunteer_id), frame=payload(frame))


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
        offer = OfferOut(
            session_id=str(self.session_id),
            urgency=Level(self.urgency).name,
            urgency_value=self.urgency,
            signals=self.signals,
            waited_s=round(self.waited_s, 1),
            expires_in_s=max(0.0, round((self.expires_at - now).total_seconds(), 1)),
            kind=self.kind,
        )
        return payload(offer)

    def notices(self, now: datetime) -> list[Notice]:
        return [
            Notice(channel=volunteer_channel(self.volunteer_id), frame=self.frame(now)),
            *([] if self.kind == "transfer" else [visitor_notice(self.session_id, "offered")]),
        ]


def assigned_frame(session: ChatSession, kind: str, now: datetime) -> dict[str, Any]:
    assigned = AssignedOut(
        session_id=str(session.id),
        urgency=Level(session.urgency).name,
        urgency_value=session.urgency,
        signals=list(session.signals or []),
        waited_s=round((now - session.waiting_since).total_seconds(), 1),
        last_seq=session.last_seq,
        locale=session.locale,
        kind=kind,
    )
    return payload(assigned)
