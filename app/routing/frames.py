"""Frames of ``WS /v1/volunteer`` (SPEC §6): what a volunteer client sends, as one tagged union
and its parser, and the server frames this socket's code sends, as models. docs/protocol.md
("Volunteer WebSocket") is the prose version.

Client frames are strict and ignore unknown fields, as the visitor socket's are: ``"5"`` is not
a seq and ``true`` is not 1, while a newer dashboard may add fields an older server does not
know (docs/protocol.md, "Client → server").
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from app.chat.cards import ResourceCard
from app.chat.frames import MAX_SEQ
from app.core.errors import BeaconError
from app.core.wire import ServerFrame
from app.domain.mute import MAX_DURATION_S as MAX_MUTE_S
from app.domain.mute import MIN_DURATION_S as MIN_MUTE_S
from app.routing.schemas import Disposition, risk_level_value


class InvalidJson(BeaconError):
    code = "invalid_json"


class InvalidFrame(BeaconError):
    code = "invalid_frame"


class UnknownFrameType(BeaconError):
    code = "unknown_frame_type"


class UnexpectedFrame(BeaconError):
    code = "unexpected_frame"


class TextTooLarge(BeaconError):
    status_code = 413
    code = "text_too_large"


def storable(value: str) -> str:
    """Postgres text cannot hold NUL: refuse it here rather than fail at commit."""
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class _Frame(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class AuthFrame(_Frame):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=256)
    # On reconnect: the last seq seen per held session, so that only what is new is replayed.
    last_seq: dict[uuid.UUID, Annotated[int, Field(ge=0, le=MAX_SEQ)]] = Field(
        default_factory=dict, max_length=100
    )


class PresenceFrame(_Frame):
    type: Literal["presence"]
    status: Literal["online", "away"]


class AcceptFrame(_Frame):
    type: Literal["accept"]
    session_id: uuid.UUID


class DeclineFrame(_Frame):
    type: Literal["decline"]
    session_id: uuid.UUID


class NextFrame(_Frame):
    type: Literal["next"]


class MessageFrame(_Frame):
    type: Literal["message"]
    session_id: uuid.UUID
    client_msg_id: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1)

    @field_validator("text", "client_msg_id")
    @classmethod
    def _storable(cls, value: str) -> str:
        return storable(value)


class ReleaseFrame(_Frame):
    type: Literal["release"]
    session_id: uuid.UUID


class TransferFrame(_Frame):
    """Warm to ``to_volunteer_id`` or to any free supervisor; with neither, cold to the queue."""

    type: Literal["transfer"]
    session_id: uuid.UUID
    to_volunteer_id: uuid.UUID | None = None
    to_supervisor: bool = False


class CloseFrame(_Frame):
    type: Literal["close"]
    session_id: uuid.UUID
    disposition: Disposition
    # The volunteer's own assessment, as a level name or 0-4; it becomes the session urgency.
    # Any string reaches the check (not a Literal), so a wrong name gets one clear message.
    risk_level: Annotated[int | str, AfterValidator(risk_level_value)]
    notes: str | None = Field(default=None, max_length=4000)

    @property
    def risk_value(self) -> int:
        return int(self.risk_level)


class SyncFrame(_Frame):
    """Replay a session's messages after ``last_seq`` (reconnect), then continue live."""

    type: Literal["sync"]
    session_id: uuid.UUID
    last_seq: int = Field(default=0, ge=0, le=MAX_SEQ)


class PingFrame(_Frame):
    type: Literal["ping"]


class HandoffFrame(_Frame):
    """Hand this session off to a hotline partner now (escalation; app/routers/handoffs.py)."""

    type: Literal["handoff"]
    session_id: uuid.UUID


class ObserveFrame(_Frame):
    """Supervisors: receive a live chat's messages without holding it (silent, audited)."""

    type: Literal["observe"]
    session_id: uuid.UUID
    last_seq: int = Field(default=0, ge=0, le=MAX_SEQ)


class UnobserveFrame(_Frame):
    type: Literal["unobserve"]
    session_id: uuid.UUID


class WhisperFrame(_Frame):
    """A note only staff on the chat see (never the visitor); stored and audited."""

    type: Literal["whisper"]
    session_id: uuid.UUID
    client_msg_id: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1)

    @field_validator("text", "client_msg_id")
    @classmethod
    def _storable(cls, value: str) -> str:
        return storable(value)


class JoinFrame(_Frame):
    """Supervisors: join the chat visibly (the visitor sees a system line)."""

    type: Literal["join"]
    session_id: uuid.UUID


class MuteFrame(_Frame):
    """Supervisors: shield the volunteer from an abusive visitor for a while (app/domain/mute)."""

    type: Literal["mute"]
    session_id: uuid.UUID
    duration_s: int = Field(ge=MIN_MUTE_S, le=MAX_MUTE_S)
    reason: str = Field(min_length=1, max_length=200)

    @field_validator("reason")
    @classmethod
    def _storable(cls, value: str) -> str:
        return storable(value)


class ConfirmMuteFrame(_Frame):
    """A second supervisor confirms a high+ session's mute."""

    type: Literal["confirm_mute"]
    mute_id: uuid.UUID


class CancelMuteFrame(_Frame):
    type: Literal["cancel_mute"]
    mute_id: uuid.UUID


class UnmuteFrame(_Frame):
    type: Literal["unmute"]
    session_id: uuid.UUID


class AskConsentFrame(_Frame):
    """Ask the visitor, in the chat, whether a hotline partner may get their transcript and a
    contact number (app/chat/consent.py)."""

    type: Literal["ask_consent"]
    session_id: uuid.UUID


ClientFrame = Annotated[
    PresenceFrame
    | AcceptFrame
    | DeclineFrame
    | NextFrame
    | MessageFrame
    | ReleaseFrame
    | TransferFrame
    | CloseFrame
    | SyncFrame
    | PingFrame
    | HandoffFrame
    | ObserveFrame
    | UnobserveFrame
    | WhisperFrame
    | JoinFrame
    | MuteFrame
    | ConfirmMuteFrame
    | CancelMuteFrame
    | UnmuteFrame
    | AskConsentFrame
    | AuthFrame,
    Field(discriminator="type"),
]

client_frame_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def parse_client_frame(raw: str) -> ClientFrame:
    """Text in, a frame or a BeaconError with a stable code out; never anything else."""
    try:
        return client_frame_adapter.validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        types = {e["type"] for e in errors}
        if "json_invalid" in types:
            raise InvalidJson("frame is not valid JSON") from None
        if "union_tag_invalid" in types:
            raise UnknownFrameType("unknown frame type") from None
        if types & {"union_tag_not_found", "model_attributes_type", "dict_type"}:
            raise InvalidFrame("frame must be an object with a string field 'type'") from None
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'frame'}: {e['msg']}" for e in errors[:3]
        )
        raise InvalidFrame(detail) from None


# -- server → client (the frames this socket's own code sends; offers and assignments are built
# where they are decided, in app.routing.assignments) --------------------------------------------


class ReadyOut(ServerFrame):
    type: Literal["ready"] = "ready"
    volunteer_id: str
    role: str
    name: str
    capacity: int
    languages: list[str]


class PresenceOut(ServerFrame):
    type: Literal["presence"] = "presence"
    status: str


class AckOut(ServerFrame):
    type: Literal["ack"] = "ack"
    session_id: str
    client_msg_id: str
    seq: int


class MessageOut(ServerFrame):
    omit_if_none: ClassVar[frozenset[str]] = frozenset(
        {"kind", "level", "signals", "client_msg_id", "resource", "muted"}
    )
    type: Literal["message"] = "message"
    session_id: str
    seq: int
    sender: str
    text: str | None
    sent_at: str  # datetime.isoformat()
    kind: str | None = None
    level: int | None = None  # visitor messages, with their signals
    signals: list[str] | None = None
    client_msg_id: str | None = None  # the volunteer's own messages
    resource: ResourceCard | None = None  # kind "resource" (app/chat/cards.py)
    muted: bool | None = None  # true: text withheld while the visitor is muted


class SessionOut(ServerFrame):
    """A held or offered session changed: its ``status``, its urgency rose, or a mute started
    (``muted`` true, ``muted_until``) or ended (``muted`` false)."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset(
        {"status", "urgency", "urgency_value", "muted", "muted_until", "consent"}
    )
    type: Literal["session"] = "session"
    session_id: str
    status: str | None = None
    urgency: str | None = None
    urgency_value: int | None = None
    muted: bool | None = None
    muted_until: str | None = None
    consent: dict[str, bool] | None = None  # the visitor answered: what they agreed to share


class TypingOut(ServerFrame):
    type: Literal["typing"] = "typing"
    session_id: str


class QueueOut(ServerFrame):
    type: Literal["queue"] = "queue"
    counts: dict[str, int]


class AlertOut(ServerFrame):
    """Supervisors only. ``urgency_raised`` alerts carry session_id, urgency, urgency_value and
    reason; other parts (escalation) publish their own fields on the supervisors channel, and
    those are passed on as they are."""

    model_config = ConfigDict(frozen=True, extra="allow")
    type: Literal["alert"] = "alert"


class ErrorOut(ServerFrame):
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"session_id", "client_msg_id"})
    type: Literal["error"] = "error"
    code: str
    detail: Any
    session_id: str | None = None
    client_msg_id: str | None = None


class WhisperOut(ServerFrame):
    """A staff note on a chat this socket holds or observes (the author's socket too)."""

    type: Literal["whisper"] = "whisper"
    session_id: str
    whisper_id: int
    author_id: str
    author_role: str
    client_msg_id: str
    text: str | None  # null once purged
    sent_at: str


class WhisperAckOut(ServerFrame):
    """The whisper is committed (a resend gets the same ``whisper_id``)."""

    type: Literal["whisper_ack"] = "whisper_ack"
    session_id: str
    client_msg_id: str
    whisper_id: int


class SupervisionOut(ServerFrame):
    """Confirms ``observe`` / ``unobserve`` / ``join``; ``seq`` is the join's system line."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq"})
    type: Literal["supervision"] = "supervision"
    session_id: str
    action: Literal["observing", "observe_ended", "joined"]
    seq: int | None = None


class MuteOut(ServerFrame):
    """Answers ``mute`` / ``confirm_mute`` / ``cancel_mute`` / ``unmute``."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset({"until", "confirmed_by"})
    type: Literal["mute"] = "mute"
    mute_id: str
    session_id: str
    status: str  # requested | active | lifted | cancelled
    needs_confirmation: bool
    requested_by: str
    until: str | None = None
    confirmed_by: str | None = None


class ConsentAskedOut(ServerFrame):
    """The consent question is in the chat (``seq``); the answer comes as a ``session`` frame
    with ``consent``."""

    type: Literal["consent_asked"] = "consent_asked"
    session_id: str
    seq: int


class PongOut(ServerFrame):
    type: Literal["pong"] = "pong"


def raw_frame(payload: dict[str, Any]) -> str:
    """A frame built elsewhere as a dict (offers and assignments in app.routing.assignments,
    the handoff answer), as text."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
