"""Visitor WebSocket frames (SPEC §6): the client→server tagged union, the parser, and the
server→client frame models. docs/protocol.md is the prose version of this file.

``parse_client_frame`` is a pure function (text in, frame or :class:`FrameError` out) so that it
can be fuzzed on its own; it never raises anything else.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.chat import cards, consent
from app.core.wire import ServerFrame

MAX_SEQ = 2**31 - 1  # messages.seq is a 32-bit integer column
MAX_CLIENT_MSG_ID = 64
MAX_RESUME_TOKEN = 256


class ErrorCode(StrEnum):
    """Stable error codes of the visitor socket (``{"type":"error","code":...}``)."""

    hello_required = "hello_required"
    hello_timeout = "hello_timeout"
    invalid_json = "invalid_json"
    invalid_frame = "invalid_frame"
    unknown_frame_type = "unknown_frame_type"
    text_too_large = "text_too_large"
    rate_limited = "rate_limited"
    invalid_resume_token = "invalid_resume_token"  # noqa: S105 - an error code, not a secret
    invalid_last_seq = "invalid_last_seq"
    session_closed = "session_closed"
    too_many_sessions = "too_many_sessions"
    temporarily_unavailable = "temporarily_unavailable"
    internal_error = "internal_error"
    invalid_contact_number = "invalid_contact_number"
    consent_not_requested = "consent_not_requested"


class CloseCode:
    """WebSocket close codes the server uses (RFC 6455 §7.4.1)."""

    normal = 1000
    unsupported_data = 1003  # a binary frame
    invalid_payload = 1007  # a text frame that is not UTF-8 (closed by the WebSocket layer)
    policy_violation = 1008  # no/late hello, bad resume token, flood
    message_too_big = 1009  # a frame over max_frame_bytes (closed by the WebSocket layer)
    internal_error = 1011
    service_restart = 1012  # server shutting down: reconnect and resume
    try_again_later = 1013  # database unreachable, or too many new sessions from this client


class FrameError(Exception):
    """A frame the server refuses; the connection stays open unless the caller decides otherwise."""

    def __init__(self, code: ErrorCode, detail: str, *, client_msg_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_msg_id = client_msg_id


# -- client → server -----------------------------------------------------------------------------


class _ClientFrame(BaseModel):
    # Strict: "5" is not a sequence number and true is not an integer. Unknown fields are ignored
    # so that newer clients can talk to older servers.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class HelloFrame(_ClientFrame):
    type: Literal["hello"]
    resume_token: str | None = Field(default=None, min_length=1, max_length=MAX_RESUME_TOKEN)
    last_seq: int | None = Field(default=None, ge=0, le=MAX_SEQ)
    locale: str | None = Field(
        default=None, max_length=16, pattern=r"^[A-Za-z]{1,8}([-_][A-Za-z0-9]{1,8})*$"
    )
    channel: str | None = Field(default=None, max_length=32, pattern=r"^[A-Za-z0-9_.:-]+$")


class MessageFrame(_ClientFrame):
    type: Literal["message"]
    client_msg_id: str = Field(min_length=1, max_length=MAX_CLIENT_MSG_ID)
    text: str


class PingFrame(_ClientFrame):
    type: Literal["ping"]


class TypingFrame(_ClientFrame):
    type: Literal["typing"]


class CloseFrame(_ClientFrame):
    type: Literal["close"]


class ConsentFrame(_ClientFrame):
    """The visitor's answer to the consent question (app/chat/consent.py)."""

    type: Literal["consent"]
    transcript: bool
    contact: bool
    contact_number: str | None = Field(default=None, max_length=32)


ClientFrame = Annotated[
    HelloFrame | MessageFrame | PingFrame | TypingFrame | CloseFrame | ConsentFrame,
    Field(discriminator="type"),
]
_client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)

_TAG_ERRORS = {"union_tag_invalid"}


def _describe(exc: ValidationError) -> str:
    # Field locations and messages only: echoing the input could leak message text.
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:3]:
        loc = ".".join(str(p) for p in error["loc"][1:]) or "frame"
        parts.append(f"{loc}: {error['msg']}")
    return "; ".join(parts)


def _no_nul(value: str | None, field: str) -> None:
    # Postgres text cannot hold NUL; reject it with a clear error instead of failing at commit.
    if value is not None and "\x00" in value:
        raise FrameError(ErrorCode.invalid_frame, f"{field}: NUL characters are not allowed")


def parse_client_frame(raw: str, *, max_text_bytes: int) -> ClientFrame:
    """Validate one text frame. Raises :class:`FrameError` (and nothing else) when it is refused."""
    try:
        frame = _client_frame.validate_json(raw)
    except ValidationError as exc:
        types = {error["type"] for error in exc.errors(include_input=False, include_url=False)}
        if "json_invalid" in types:
            raise FrameError(ErrorCode.invalid_json, "frame is not valid JSON") from None
        if types & _TAG_ERRORS:
            raise FrameError(
                ErrorCode.unknown_frame_type,
                "type must be one of hello, message, ping, typing, close, consent",
            ) from None
        if "union_tag_not_found" in types:
            raise FrameError(ErrorCode.invalid_frame, "frame needs a string field 'type'") from None
        client_msg_id = _client_msg_id_of(raw)
        raise FrameError(
            ErrorCode.invalid_frame, _describe(exc), client_msg_id=client_msg_id
        ) from None
    if isinstance(frame, MessageFrame):
        _no_nul(frame.client_msg_id, "client_msg_id")
        try:
            size = len(frame.text.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates; the JSON parser already refuses them
            raise FrameError(
                ErrorCode.invalid_frame,
                "text is not valid Unicode",
                client_msg_id=frame.client_msg_id,
            ) from None
        if size > max_text_bytes:
            raise FrameError(
                ErrorCode.text_too_large,
                f"text is {size} bytes; the limit is {max_text_bytes}",
                client_msg_id=frame.client_msg_id,
            )
        if not frame.text.strip():
            raise FrameError(
                ErrorCode.invalid_frame, "text must not be empty", client_msg_id=frame.client_msg_id
            )
        if "\x00" in frame.text:
            raise FrameError(
                ErrorCode.invalid_frame,
                "text: NUL characters are not allowed",
                client_msg_id=frame.client_msg_id,
            )
    elif isinstance(frame, HelloFrame):
        _no_nul(frame.resume_token, "resume_token")
    elif isinstance(frame, ConsentFrame) and frame.contact:
        number = frame.contact_number
        if number is None or not consent.valid_phone(number.strip()):
            raise FrameError(
                ErrorCode.invalid_contact_number,
                "contact: true needs contact_number, a phone number (digits, +, spaces, - ( ) .)",
            )
    return frame


def _client_msg_id_of(raw: str) -> str | None:
    """Best effort: name the message an ``invalid_frame`` error is about, if it says."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("client_msg_id") if isinstance(data, dict) else None
    if isinstance(value, str) and 0 < len(value) <= MAX_CLIENT_MSG_ID and "\x00" not in value:
        return value
    return None


def is_erase_command(text: str) -> bool:
    """The visitor typed DELETE (exact word, surrounding whitespace ignored, case-sensitive)."""
    return text.strip() == "DELETE"


# -- server → client -----------------------------------------------------------------------------
# One model per frame; ``.dump()`` is the text sent. docs/protocol.md "Server → client" is the
# prose version.


class SessionOut(ServerFrame):
    type: Literal["session"] = "session"
    session_id: str
    resume_token: str
    status: str
    last_seq: int


class AckOut(ServerFrame):
    type: Literal["ack"] = "ack"
    client_msg_id: str
    seq: int


class MessageOut(ServerFrame):
    omit_if_none: ClassVar[frozenset[str]] = frozenset(
        {"kind", "client_msg_id", "resource", "asks"}
    )
    type: Literal["message"] = "message"
    seq: int
    sender: str
    text: str | None
    sent_at: str  # datetime.isoformat(): "+00:00", as the wire has always said
    kind: str | None = None
    client_msg_id: str | None = None
    resource: cards.ResourceCard | None = None  # kind "resource": the card (app/chat/cards.py)
    asks: list[str] | None = None  # kind "consent": the question's subjects (app/chat/consent)

    @classmethod
    def of(
        cls,
        *,
        seq: int,
        sender: str,
        text: str | None,
        sent_at: datetime,
        kind: str | None = None,
        client_msg_id: str | None = None,
    ) -> MessageOut:
        shown, card = cards.wire_text(kind, text)
        return cls(
            seq=seq,
            sender=sender,
            text=shown,
            sent_at=sent_at.isoformat(),
            kind=kind,
            client_msg_id=client_msg_id,
            resource=card,
            asks=list(consent.ASKS) if kind == consent.KIND else None,
        )


class StatusOut(ServerFrame):
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"reason"})
    type: Literal["status"] = "status"
    status: str
    queue_position: int | None
    estimated_wait_s: int | None
    reason: str | None = None


class ErrorOut(ServerFrame):
    omit_if_none: ClassVar[frozenset[str]] = frozenset({"client_msg_id", "retry_after_s"})
    type: Literal["error"] = "error"
    code: str
    detail: str
    client_msg_id: str | None = None
    retry_after_s: int | None = None


class TypingOut(ServerFrame):
    type: Literal["typing"] = "typing"
    sender: str


class ConsentOut(ServerFrame):
    """Confirms the visitor's consent answer (what will be shared beyond the minimum)."""

    type: Literal["consent"] = "consent"
    transcript: bool
    contact: bool


class PongOut(ServerFrame):
    type: Literal["pong"] = "pong"


PONG_FRAME = PongOut().dump()
