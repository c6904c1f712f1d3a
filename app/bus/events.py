"""Every bus payload as a type: a union of frozen dataclasses told apart by one field, ``kind``.

Payloads are hints with ids only (never message text): receivers load what they need from the
database. Producers build an event and :func:`encode` it; consumers :func:`decode` what they
receive and ``match`` on the class. An unknown or malformed payload decodes to ``None`` (a
newer instance may publish kinds this one does not know yet; they are hints, so skipping one is
safe).

The ``volunteer:<id>`` channels are the exception: they carry server frames for that person's
sockets, told apart by their ``type`` (the socket protocol's frames, not bus events).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from app.bus.base import Payload


@dataclass(frozen=True, slots=True)
class MessageStored:
    """Message ``seq`` of the session is committed (on ``session:<id>``)."""

    kind: ClassVar[Literal["message"]] = "message"
    session_id: str
    seq: int
    sender: str
    client_msg_id: str | None


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """The session moved (``session:<id>``, and ``queue`` unless it never was in the queue)."""

    kind: ClassVar[Literal["status"]] = "status"
    session_id: str
    status: str


@dataclass(frozen=True, slots=True)
class UrgencyRaised:
    kind: ClassVar[Literal["urgency"]] = "urgency"
    session_id: str
    urgency: int
    previous: int
    seq: int


@dataclass(frozen=True, slots=True)
class Queued:
    """A waiting session's visitor spoke for the first time: it joins the queue now."""

    kind: ClassVar[Literal["queued"]] = "queued"
    session_id: str
    urgency: int


@dataclass(frozen=True, slots=True)
class Typing:
    kind: ClassVar[Literal["typing"]] = "typing"
    session_id: str
    sender: str


@dataclass(frozen=True, slots=True)
class Erased:
    kind: ClassVar[Literal["erased"]] = "erased"
    session_id: str


@dataclass(frozen=True, slots=True)
class WhisperStored:
    """A staff-only note on the session is committed (``session:<id>``). Staff sockets load it
    by id; the visitor's socket ignores the kind, and the note is in a table visitor reads never
    touch (app/chat/models.Whisper)."""

    kind: ClassVar[Literal["whisper"]] = "whisper"
    session_id: str
    whisper_id: int


@dataclass(frozen=True, slots=True)
class MuteChanged:
    """A supervisor's mute of the session started (``until`` set) or ended (``until`` None)."""

    kind: ClassVar[Literal["mute"]] = "mute"
    session_id: str
    mute_id: str
    until: str | None


@dataclass(frozen=True, slots=True)
class ConsentChanged:
    """The visitor answered the consent question (yes/no only, never the number)."""

    kind: ClassVar[Literal["consent"]] = "consent"
    session_id: str
    transcript: bool
    contact: bool


@dataclass(frozen=True, slots=True)
class Wake:
    """Something changed that may allow a new offer: every router re-reads the queue."""

    kind: ClassVar[Literal["wake"]] = "wake"


@dataclass(frozen=True, slots=True)
class Resync:
    """Hints may have been lost (a listener reconnected, a subscriber fell behind): reload."""

    kind: ClassVar[Literal["resync"]] = "resync"


@dataclass(frozen=True, slots=True)
class SupervisorAlert:
    """For supervisors' sockets (``supervisors``): escalation (``kind`` ``escalation``), the
    at-risk watch (``at_risk``) or supervision's mutes (``supervision``), with the urgency by
    name and value and a ``reason``; ``extra`` holds what each reason adds (handoff id,
    partner, volunteer ids, mute id...)."""

    kind: Literal["escalation", "at_risk", "supervision"]
    session_id: str
    urgency: str
    urgency_value: int
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)


BusEvent = (
    MessageStored
    | StatusChanged
    | UrgencyRaised
    | Queued
    | Typing
    | Erased
    | WhisperStored
    | MuteChanged
    | ConsentChanged
    | Wake
    | Resync
    | SupervisorAlert
)

_BY_KIND: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (
        MessageStored,
        StatusChanged,
        UrgencyRaised,
        Queued,
        Typing,
        Erased,
        WhisperStored,
        MuteChanged,
        ConsentChanged,
        Wake,
        Resync,
    )
}
_ALERT_KINDS = ("escalation", "at_risk", "supervision")


def encode(event: BusEvent) -> Payload:
    """The JSON object published for ``event`` (``kind`` first, then its fields)."""
    if isinstance(event, SupervisorAlert):
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
        extra = fields.pop("extra")
        return {**fields, **extra}
    return {"kind": event.kind, **dataclasses.asdict(event)}


def decode(payload: Payload) -> BusEvent | None:
    kind = payload.get("kind")
    if kind in _ALERT_KINDS:
        names = ("session_id", "urgency", "urgency_value", "reason")
        if not all(n in payload for n in names):
            return None
        extra = {k: v for k, v in payload.items() if k not in (*names, "kind")}
        return SupervisorAlert(
            kind,
            session_id=payload["session_id"],
            urgency=payload["urgency"],
            urgency_value=payload["urgency_value"],
            reason=payload["reason"],
            extra=extra,
        )
    cls = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return None
    fields = [f.name for f in dataclasses.fields(cls)]
    try:
        event: BusEvent = cls(**{n: payload[n] for n in fields})
    except (KeyError, TypeError):
        return None
    return event


def session_id_of(event: BusEvent) -> uuid.UUID | None:
    value = getattr(event, "session_id", None)
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None
