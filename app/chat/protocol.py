"""``visitor_protocol``: the rules of one ``WS /v1/chat`` connection, with no I/O.

Sans-I/O in the shape of python-websockets' ``Protocol``: :meth:`VisitorProtocol.receive` takes
what arrived and the time, and returns :data:`~app.core.wsloop.Action`\\ s (send this frame,
close with that code, run that command). :class:`~app.chat.connection.VisitorConnection` runs
the commands (open a session, store a message, end the chat) and reports their outcome back
through the methods below, which again answer with actions. The state a visitor sees (status,
queue position, the last status frame sent) lives here too, so deduplication and the mapping of
internal states onto the five visible ones are decided in one place.

States: ``hello`` (nothing but a hello is accepted, within ``hello_timeout_s``) → ``opening``
(the hello's command runs; nothing is read meanwhile) → ``open`` → ``closed`` (a Close was
asked for; read nothing more). docs/protocol.md is the wire contract.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from app.chat import frames
from app.chat.frames import CloseCode, ErrorCode, FrameError
from app.core.ratelimit import FloodGuard, Verdict
from app.core.wsloop import Action, BinaryIn, Call, Close, Send, TextIn

TYPING_THROTTLE_S = 2.0
# The five states a visitor sees (SPEC §6); internal ones map onto the nearest.
_VISIBLE_STATUS = {"transferring": "active", "abandoned": "closed"}
_TERMINAL = frozenset({"closed", "abandoned"})


class State(Enum):
    hello = "hello"
    opening = "opening"
    open = "open"
    closed = "closed"


# -- commands: what the connection runs for the protocol ---------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    hello: frames.HelloFrame


@dataclass(frozen=True, slots=True)
class Submit:
    frame: frames.MessageFrame


@dataclass(frozen=True, slots=True)
class End:
    erase: bool  # DELETE: erase the transcript; else the visitor closed the chat


@dataclass(frozen=True, slots=True)
class Typing:
    pass


@dataclass(frozen=True, slots=True)
class GiveConsent:
    """The visitor answered the consent question (app/chat/consent.py)."""

    frame: frames.ConsentFrame


@dataclass(frozen=True, slots=True)
class Deliver:
    """A bus hint: message ``seq`` is committed; the feed loads and sends what is new."""

    seq: int
    sender: str | None
    client_msg_id: str | None


@dataclass(frozen=True, slots=True)
class ShowStatus:
    """The session changed state: show it, with its queue place when it has one."""

    status: str


@dataclass(frozen=True, slots=True)
class Resync:
    """The bus may have lost hints: catch up from the database and reload the status."""


Command = Open | Submit | End | Typing | GiveConsent | Deliver | ShowStatus | Resync


def error(
    code: ErrorCode,
    detail: str,
    *,
    client_msg_id: str | None = None,
    retry_after_s: int | None = None,
) -> Send:
    frame = frames.ErrorOut(
        code=code.value, detail=detail, client_msg_id=client_msg_id, retry_after_s=retry_after_s
    )
    return Send(frame.dump())


class VisitorProtocol:
    __slots__ = (
        "_erased",
        "_flood",
        "_hello_deadline",
        "_last_status_frame",
        "_last_typing",
        "_max_text_bytes",
        "_queue",
        "ending",
        "queueable",
        "state",
        "status",
    )

    def __init__(
        self,
        *,
        now: float,
        hello_timeout_s: float,
        max_text_bytes: int,
        rate: float,
        burst: int,
        disconnect_after: int,
    ) -> None:
        self.state = State.hello
        self._hello_deadline = now + hello_timeout_s
        # Erased elsewhere (DELETE over HTTP, another tab): the closed status then says so.
        self._erased = False
        self._max_text_bytes = max_text_bytes
        self._flood = FloodGuard(rate=rate, burst=burst, disconnect_after=disconnect_after, now=now)
        self._last_typing: float | None = None
        # What the visitor sees: the session's status and, while waiting in the queue, its
        # place. A silent session has no place (it joins the queue with its first message).
        self.status = "waiting"
        self.queueable = False
        self._queue: tuple[int | None, int | None] = (None, None)
        self._last_status_frame: str | None = None
        self.ending = False  # our own status announcement must not race the confirmation

    # -- the loop's side ---------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self.state is State.closed

    @property
    def deadline(self) -> float | None:
        return self._hello_deadline if self.state is State.hello else None

    def timeout(self, now: float) -> list[Action]:
        if self.state is not State.hello or now < self._hello_deadline:
            return []
        return self._refuse(
            ErrorCode.hello_timeout,
            "no hello frame in time",
            CloseCode.policy_violation,
            "hello timeout",
        )

    def receive(self, incoming: TextIn | BinaryIn, now: float) -> list[Action]:
        if self.state in (State.closed, State.opening):
            return []
        if isinstance(incoming, BinaryIn):
            return self._close(CloseCode.unsupported_data, "binary frames are not supported")
        verdict = self._flood.check(now)
        if verdict is Verdict.disconnect:
            return self._refuse(
                ErrorCode.rate_limited,
                "too many frames; closing",
                CloseCode.policy_violation,
                "rate limit exceeded",
            )
        if verdict is Verdict.reject:
            return [error(ErrorCode.rate_limited, "too many frames; this one was dropped")]
        try:
            frame = frames.parse_client_frame(incoming.text, max_text_bytes=self._max_text_bytes)
        except FrameError as exc:
            return [error(exc.code, exc.detail, client_msg_id=exc.client_msg_id)]
        if self.state is State.hello:
            return self._first(frame)
        return self._frame(frame, now)

    def _first(self, frame: frames.ClientFrame) -> list[Action]:
        if isinstance(frame, frames.HelloFrame):
            self.state = State.opening
            return [Call(Open(frame))]
        return self._refuse(
            ErrorCode.hello_required,
            "the first frame must be a hello",
            CloseCode.policy_violation,
            "hello required",
        )

    def _frame(self, frame: frames.ClientFrame, now: float) -> list[Action]:
        if isinstance(frame, frames.MessageFrame):
            if frames.is_erase_command(frame.text):
                return self._end(erase=True)
            return [Call(Submit(frame))]
        if isinstance(frame, frames.PingFrame):
            return [Send(frames.PONG_FRAME)]
        if isinstance(frame, frames.TypingFrame):
            if self._last_typing is not None and now - self._last_typing < TYPING_THROTTLE_S:
                return []
            self._last_typing = now
            return [Call(Typing())]
        if isinstance(frame, frames.CloseFrame):
            return self._end(erase=False)
        if isinstance(frame, frames.ConsentFrame):
            return [Call(GiveConsent(frame))]
        return [error(ErrorCode.invalid_frame, "hello was already received")]

    def _end(self, *, erase: bool) -> list[Action]:
        self.ending = True
        return [Call(End(erase=erase))]

    def _close(self, code: int, reason: str) -> list[Action]:
        self.state = State.closed
        return [Close(code, reason)]

    def _refuse(self, code: ErrorCode, detail: str, close_code: int, reason: str) -> list[Action]:
        return [error(code, detail), *self._close(close_code, reason)]

    # -- outcomes of the commands ------------------------------------------------------------

    def opened(self, *, queueable: bool) -> None:
        self.state = State.open
        self.queueable = queueable

    def invalid_resume_token(self) -> list[Action]:
        return self._refuse(
            ErrorCode.invalid_resume_token,
            "unknown or expired resume token",
            CloseCode.policy_violation,
            "invalid resume token",
        )

    def unavailable(self) -> list[Action]:
        """The database did not answer the hello."""
        return self._refuse(
            ErrorCode.temporarily_unavailable,
            "please reconnect shortly",
            CloseCode.try_again_later,
            "try again later",
        )

    def too_many_sessions(self, retry_after_s: float) -> list[Action]:
        """A refusal says when to retry, so a client can try again by itself."""
        return [
            error(
                ErrorCode.too_many_sessions,
                "too many new chats from your network; please try again shortly",
                retry_after_s=max(1, math.ceil(retry_after_s)),
            ),
            *self._close(CloseCode.try_again_later, "too many sessions"),
        ]

    def internal_error(self) -> list[Action]:
        """Never a dead handler without a word: tell the client, close with 1011."""
        return self._refuse(
            ErrorCode.internal_error,
            "internal error; reconnect",
            CloseCode.internal_error,
            "internal error",
        )

    def stored(self) -> None:
        self.queueable = True  # the committer put a waiting session in the queue with it

    @staticmethod
    def not_stored(client_msg_id: str, *, closed: bool) -> list[Action]:
        if closed:
            return [
                error(ErrorCode.session_closed, "this chat has ended", client_msg_id=client_msg_id)
            ]
        return [
            error(
                ErrorCode.temporarily_unavailable,
                "not stored; resend with the same client_msg_id",
                client_msg_id=client_msg_id,
            )
        ]

    @staticmethod
    def consent_recorded(transcript: bool, contact: bool) -> list[Action]:
        return [Send(frames.ConsentOut(transcript=transcript, contact=contact).dump())]

    @staticmethod
    def consent_refused(code: ErrorCode) -> list[Action]:
        detail = {
            ErrorCode.consent_not_requested: "there is no consent question to answer",
            ErrorCode.session_closed: "this chat has ended",
        }.get(code, "not recorded; please answer again")
        return [error(code, detail)]

    def end_failed(self) -> list[Action]:
        self.ending = False
        return [error(ErrorCode.temporarily_unavailable, "please try again")]

    def ended(self, *, erase: bool) -> list[Action]:
        """Confirm with a ``closed`` status, then close."""
        self.status = "closed"
        reason = "erased" if erase else "visitor_closed"
        return [
            *self._status_frame(reason=reason),
            *self._close(CloseCode.normal, "transcript erased" if erase else "chat closed"),
        ]

    # -- what the bus brings ------------------------------------------------------------------

    def event(self, payload: Mapping[str, Any]) -> list[Action]:
        """A payload from the session's bus channel (app/chat/events.py) or the queue monitor."""
        kind = payload.get("kind")
        if kind == "message":
            seq, sender, client_msg_id = (
                payload.get(k) for k in ("seq", "sender", "client_msg_id")
            )
            if not isinstance(seq, int):
                return []
            return [Call(Deliver(seq, _str_or_none(sender), _str_or_none(client_msg_id)))]
        if kind == "status":
            return [Call(ShowStatus(str(payload.get("status"))))]
        if kind == "queue_info":
            return self.queue_moved(payload.get("position"), payload.get("estimated_wait_s"))
        if kind == "typing" and payload.get("sender") in ("volunteer", "system"):
            return [Send(frames.TypingOut(sender=str(payload["sender"])).dump())]
        if kind == "resync":
            return [Call(Resync())]
        if kind == "erased":
            self._erased = True  # its closed status follows on the same channel
        return []  # erased, urgency, ...: nothing shown by itself

    # -- what the visitor sees ---------------------------------------------------------------

    @property
    def quiet(self) -> bool:
        """Ending or closed: status changes are no longer announced."""
        return self.ending or self.closing

    def wants_queue_place(self, status: str) -> bool:
        """Whether a status change needs the session's queue place looked up."""
        return status == "waiting" and self.queueable

    def show_status(
        self, status: str, queue_position: int | None = None, estimated_wait_s: int | None = None
    ) -> list[Action]:
        """The session moved (or is shown for the first time): announce it; a terminal one
        also ends the connection."""
        if self.quiet:
            return []
        self.status = status
        self._queue = (queue_position, estimated_wait_s)
        erased = self._erased and status == "closed"
        actions = self._status_frame(reason="erased" if erased else None)
        if status in _TERMINAL:
            actions += self._close(CloseCode.normal, "chat closed")
        return actions

    def queue_moved(self, queue_position: int | None, estimated_wait_s: int | None) -> list[Action]:
        if self.status != "waiting":
            return []
        self._queue = (queue_position, estimated_wait_s)
        return self._status_frame()

    def _status_frame(self, reason: str | None = None) -> list[Action]:
        waiting = self.status == "waiting"
        position, wait = self._queue if waiting else (None, None)
        frame = frames.StatusOut(
            status=visible(self.status),
            queue_position=position,
            estimated_wait_s=wait,
            reason=reason,
        ).dump()
        if frame == self._last_status_frame:
            return []
        self._last_status_frame = frame
        return [Send(frame)]


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def visible(status: str) -> str:
    return _VISIBLE_STATUS.get(status, status)
