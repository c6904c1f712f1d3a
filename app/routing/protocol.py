"""``volunteer_protocol``: the rules of one ``WS /v1/volunteer`` connection, with no I/O.

The same shape as :mod:`app.chat.protocol` (python-websockets' sans-I/O ``Protocol``):
:meth:`VolunteerProtocol.receive` takes what arrived and the time and returns
:data:`~app.core.wsloop.Action`\\ s; the socket (:mod:`app.routers.volunteer_ws`) runs the
commands — authenticate, a frame for the volunteer's live link, a hotline handoff — and reports
refusals back through :meth:`refused` / :meth:`unavailable`, which pick the error frame.

States: ``auth`` (only an ``auth`` frame, within the hello timeout; anything else closes with
1008) → ``authenticating`` (its command runs; nothing is read meanwhile) → ``open`` →
``closed``. Bad input once open gets an ``error`` with a stable code and the socket stays open;
only a binary frame (1003), a flood (1008) or a database that is away while connecting (1013)
end it. docs/protocol.md ("Volunteer WebSocket") is the wire contract.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from app.chat.frames import CloseCode
from app.core.errors import BeaconError
from app.core.ratelimit import FloodGuard, Verdict
from app.core.wsloop import Action, BinaryIn, Call, Close, Send, TextIn
from app.routing import frames
from app.triage.types import Level

_TRY_AGAIN_LATER = 1013
# Session updates after which the volunteer no longer holds the chat.
LET_GO = frozenset(
    {
        "closed",
        "abandoned",
        "handed_off",
        "released",
        "transferred",
        "requeued",
        "transferred_to_queue",
    }
)


class State(Enum):
    auth = "auth"
    authenticating = "authenticating"
    open = "open"
    closed = "closed"


@dataclass(frozen=True, slots=True)
class Authenticate:
    frame: frames.AuthFrame


@dataclass(frozen=True, slots=True)
class Handle:
    """A frame for the volunteer's live link (app/routing/live.py)."""

    frame: frames.ClientFrame


@dataclass(frozen=True, slots=True)
class Handoff:
    frame: frames.HandoffFrame


Command = Authenticate | Handle | Handoff


def error(code: str, detail: Any, frame: frames.ClientFrame | None = None) -> Send:
    """An error frame; it echoes which session / message it is about, so a client can match
    it up."""
    return Send(
        frames.ErrorOut(
            code=code,
            detail=detail,
            session_id=_str_or_none(getattr(frame, "session_id", None)),
            client_msg_id=getattr(frame, "client_msg_id", None),
        ).dump()
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


class VolunteerProtocol:
    def __init__(
        self,
        *,
        now: float,
        auth_timeout_s: float,
        rate: float,
        burst: int,
        disconnect_after: int,
    ) -> None:
        self.state = State.auth
        self._auth_deadline = now + auth_timeout_s
        self._flood = FloodGuard(rate=rate, burst=burst, disconnect_after=disconnect_after, now=now)

    @property
    def closing(self) -> bool:
        return self.state is State.closed

    @property
    def deadline(self) -> float | None:
        return self._auth_deadline if self.state is State.auth else None

    def timeout(self, now: float) -> list[Action]:
        if self.state is not State.auth or now < self._auth_deadline:
            return []
        return self._refuse("auth_timeout", "send an auth frame first", CloseCode.policy_violation)

    def receive(self, incoming: TextIn | BinaryIn, now: float) -> list[Action]:
        if self.state in (State.closed, State.authenticating):
            return []
        if isinstance(incoming, BinaryIn):
            # Also before auth: refused like any binary frame, not dropped.
            return self._refuse(
                "binary_not_supported", "send JSON text frames", CloseCode.unsupported_data
            )
        if self.state is State.auth:
            return self._first(incoming.text)
        # The auth frame itself is not counted: the bucket is for what follows.
        verdict = self._flood.check(now)
        if verdict is Verdict.disconnect:
            return self._refuse("rate_limited", "too many frames", CloseCode.policy_violation)
        if verdict is Verdict.reject:
            return [error("rate_limited", "too many frames; slow down")]
        try:
            frame = frames.parse_client_frame(incoming.text)
        except BeaconError as exc:
            return [error(exc.code, exc.detail)]
        if isinstance(frame, frames.AuthFrame):
            return [error("unexpected_frame", "already authenticated", frame)]
        if isinstance(frame, frames.HandoffFrame):
            return [Call(Handoff(frame))]
        return [Call(Handle(frame))]

    def _first(self, text: str) -> list[Action]:
        try:
            frame = frames.parse_client_frame(text)
        except BeaconError as exc:
            return self.unauthorized(exc)
        if not isinstance(frame, frames.AuthFrame):
            return self._refuse(
                "unauthorized", "the first frame must be auth", CloseCode.policy_violation
            )
        self.state = State.authenticating
        return [Call(Authenticate(frame))]

    def _refuse(self, code: str, detail: str, close_code: int) -> list[Action]:
        self.state = State.closed
        return [error(code, detail), Close(close_code)]

    # -- outcomes of the commands ------------------------------------------------------------

    def authenticated(self) -> None:
        self.state = State.open

    def unauthorized(self, exc: BeaconError) -> list[Action]:
        return self._refuse(exc.code, str(exc.detail), CloseCode.policy_violation)

    def unavailable(self, frame: frames.ClientFrame | None = None) -> list[Action]:
        """The database did not answer: while connecting the socket closes (1013, reconnect
        with backoff); once open the frame is refused and may be retried."""
        if self.state is not State.open:
            return self._refuse(
                "temporarily_unavailable",
                "the database did not answer; reconnect shortly",
                _TRY_AGAIN_LATER,
            )
        return [error("temporarily_unavailable", "the database did not answer; retry", frame)]

    @staticmethod
    def refused(frame: frames.ClientFrame, exc: BeaconError) -> list[Action]:
        return [error(exc.code, exc.detail, frame)]


# -- what the bus brings ---------------------------------------------------------------------------
# The volunteer's live link (app/routing/live.py) pumps three kinds of channel; these decide what
# each payload becomes, as actions (``Send`` a frame, or ``Call`` one of the link's commands).


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Re-send pending offers and held chats (after a bus resync)."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Start delivering this session's messages (it was just assigned)."""

    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class LetGo:
    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Flush:
    """Send what is new in this held session, in seq order; ``upto``: the seq a message hint
    announced (None: a resync, look for whatever is new)."""

    session_id: uuid.UUID
    upto: int | None = None


@dataclass(frozen=True, slots=True)
class ShieldChanged:
    """A mute of this session, or its urgency, changed: what a mute withholds from this viewer
    has to be read again."""

    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class DeliverWhisper:
    """Load staff note ``whisper_id`` of this held or observed session and send it."""

    session_id: uuid.UUID
    whisper_id: int


LinkCommand = Snapshot | Hold | LetGo | Flush | ShieldChanged | DeliverWhisper


def personal_event(payload: Mapping[str, Any]) -> list[Action]:
    """``volunteer:<id>``: offers, assignments and session updates meant for this person, built
    as frames by whoever decided them (routing/assignments): passed on as they are."""
    if payload.get("kind") == "resync":
        # Held sessions only fetch what is new (their own resync does too): a resync never
        # sends a seq this connection has already sent.
        return [Call(Snapshot())]
    frame_type = payload.get("type")
    if not isinstance(frame_type, str):
        return []
    actions: list[Action] = [Send(frames.raw_frame(dict(payload)))]
    session_id = _uuid(payload.get("session_id"))
    if session_id is None:
        return actions
    if frame_type == "assigned":
        actions.append(Call(Hold(session_id)))
    elif frame_type == "session" and payload.get("status") in LET_GO:
        actions.append(Call(LetGo(session_id)))
    return actions


def session_event(session_id: uuid.UUID, payload: Mapping[str, Any]) -> list[Action]:
    """``session:<id>`` of a held session (app/chat/events.py payloads)."""
    kind = payload.get("kind")
    sid = str(session_id)
    status, urgency = payload.get("status"), payload.get("urgency")
    if kind == "status" and isinstance(status, str):
        return [Send(frames.SessionOut(session_id=sid, status=status).dump())]
    if kind == "urgency" and isinstance(urgency, int):
        update = frames.SessionOut(
            session_id=sid, urgency=Level(urgency).name, urgency_value=urgency
        )
        return [Call(ShieldChanged(session_id)), Send(update.dump())]
    if kind == "mute":
        until = payload.get("until")
        muted = isinstance(until, str)
        update = frames.SessionOut(
            session_id=sid, muted=muted, muted_until=until if muted else None
        )
        return [Call(ShieldChanged(session_id)), Send(update.dump())]
    if kind == "consent":
        answer = {k: payload.get(k) for k in ("transcript", "contact")}
        if all(isinstance(v, bool) for v in answer.values()):
            consent = {k: bool(v) for k, v in answer.items()}
            return [Send(frames.SessionOut(session_id=sid, consent=consent).dump())]
        return []
    if kind == "whisper":
        whisper_id = payload.get("whisper_id")
        if isinstance(whisper_id, int) and not isinstance(whisper_id, bool):
            return [Call(DeliverWhisper(session_id, whisper_id))]
        return []
    if kind == "typing":
        if payload.get("sender") == "visitor":
            return [Send(frames.TypingOut(session_id=sid).dump())]
        return []
    # Anything else (a message hint, a resync) means: read what is new, in seq order.
    seq = payload.get("seq")
    if kind == "message" and isinstance(seq, int) and not isinstance(seq, bool):
        return [Call(Flush(session_id, upto=seq))]
    return [Call(ShieldChanged(session_id)), Call(Flush(session_id))]


def alert_event(payload: Mapping[str, Any], *, queue_channel: bool) -> list[Action]:
    """Supervisors hear every rise to ``high`` or above (SPEC §2: "supervisors see it") from
    the queue channel, and whatever other parts (escalation) publish on the supervisors one."""
    kind = payload.get("kind")
    if not queue_channel:
        if kind == "resync":
            return []
        return [Send(frames.AlertOut(**{k: v for k, v in payload.items() if k != "type"}).dump())]
    urgency = payload.get("urgency")
    if kind != "urgency" or not isinstance(urgency, int) or urgency < Level.high:
        return []
    alert = frames.AlertOut(
        session_id=payload.get("session_id"),
        urgency=Level(urgency).name,
        urgency_value=urgency,
        reason="urgency_raised",
    )
    return [Send(alert.dump())]


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
