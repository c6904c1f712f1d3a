"""Supervision frames (issue 14) on the volunteer protocol, and the visitor protocol's deafness
to whispers: frames in, actions out, no socket or database."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from app.chat import frames as visitor_frames
from app.chat.protocol import VisitorProtocol
from app.core.wsloop import Call, Send, TextIn
from app.routing import frames
from app.routing.protocol import (
    DeliverWhisper,
    Flush,
    Handle,
    ShieldChanged,
    VolunteerProtocol,
    session_event,
)

SID = uuid.UUID("00000000-0000-4000-8000-000000000002")


def authed() -> VolunteerProtocol:
    p = VolunteerProtocol(now=0.0, auth_timeout_s=10.0, rate=20.0, burst=100, disconnect_after=200)
    p.receive(TextIn(json.dumps({"type": "auth", "token": "bv_x"})), 0.0)
    p.authenticated()
    return p


def one(frame: dict[str, Any]) -> Any:
    [action] = authed().receive(TextIn(json.dumps(frame)), 1.0)
    return action


@pytest.mark.parametrize(
    ("frame", "cls"),
    [
        ({"type": "observe", "session_id": str(SID)}, frames.ObserveFrame),
        ({"type": "observe", "session_id": str(SID), "last_seq": 7}, frames.ObserveFrame),
        ({"type": "unobserve", "session_id": str(SID)}, frames.UnobserveFrame),
        ({"type": "join", "session_id": str(SID)}, frames.JoinFrame),
        (
            {"type": "whisper", "session_id": str(SID), "client_msg_id": "w", "text": "hi"},
            frames.WhisperFrame,
        ),
        (
            {"type": "mute", "session_id": str(SID), "duration_s": 600, "reason": "abuse"},
            frames.MuteFrame,
        ),
        ({"type": "unmute", "session_id": str(SID)}, frames.UnmuteFrame),
        ({"type": "confirm_mute", "mute_id": str(SID)}, frames.ConfirmMuteFrame),
        ({"type": "cancel_mute", "mute_id": str(SID)}, frames.CancelMuteFrame),
    ],
)
def test_supervision_frames_go_to_the_link(frame: dict[str, Any], cls: type) -> None:
    action = one(frame)
    assert isinstance(action, Call)
    assert isinstance(action.command, Handle)
    assert isinstance(action.command.frame, cls)
    ids = {getattr(action.command.frame, k, None) for k in ("session_id", "mute_id")}
    assert SID in ids


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "whisper", "session_id": str(SID), "client_msg_id": "w", "text": "   "},
        {"type": "whisper", "session_id": str(SID), "client_msg_id": "w", "text": "a\x00b"},
        {"type": "whisper", "session_id": str(SID), "client_msg_id": "", "text": "hi"},
        {"type": "whisper", "session_id": str(SID), "text": "hi"},
        {"type": "observe", "session_id": str(SID), "last_seq": "3"},
        {"type": "observe", "session_id": str(SID), "last_seq": -1},
        {"type": "join", "session_id": 5},
        {"type": "unobserve"},
        {"type": "mute", "session_id": str(SID), "duration_s": 59, "reason": "x"},
        {"type": "mute", "session_id": str(SID), "duration_s": 86401, "reason": "x"},
        {"type": "mute", "session_id": str(SID), "duration_s": "600", "reason": "x"},
        {"type": "mute", "session_id": str(SID), "duration_s": 600, "reason": " "},
        {"type": "mute", "session_id": str(SID), "duration_s": 600, "reason": "x" * 201},
        {"type": "mute", "session_id": str(SID), "duration_s": 600},
        {"type": "confirm_mute", "mute_id": "nope"},
    ],
)
def test_bad_supervision_frames_get_invalid_frame(frame: dict[str, Any]) -> None:
    action = one(frame)
    assert isinstance(action, Send)
    assert json.loads(action.text)["code"] == "invalid_frame"


def test_whisper_hint_becomes_a_load_by_id_and_bad_hints_nothing() -> None:
    [call] = session_event(SID, {"kind": "whisper", "session_id": str(SID), "whisper_id": 9})
    assert isinstance(call, Call)
    assert call.command == DeliverWhisper(SID, 9)
    assert session_event(SID, {"kind": "whisper", "whisper_id": "9"}) == []
    assert session_event(SID, {"kind": "whisper", "whisper_id": True}) == []
    # A message hint means "deliver up to its seq"; anything else (a resync) means "read what
    # is new", after forgetting what the link knew a mute withholds (it may have missed a change).
    assert session_event(SID, {"kind": "message", "seq": 3}) == [Call(Flush(SID, upto=3))]
    assert session_event(SID, {"kind": "message", "seq": True}) == [
        Call(ShieldChanged(SID)),
        Call(Flush(SID)),
    ]
    assert session_event(SID, {"kind": "resync"}) == [Call(ShieldChanged(SID)), Call(Flush(SID))]
    forget, update = session_event(SID, {"kind": "urgency", "urgency": 3, "previous": 1})
    assert forget == Call(ShieldChanged(SID))  # a mute withholds nothing in a high+ chat
    assert isinstance(update, Send)


def test_server_frames_keep_their_wire_shape() -> None:
    assert json.loads(frames.SupervisionOut(session_id="s", action="observing").dump()) == {
        "type": "supervision",
        "session_id": "s",
        "action": "observing",
    }
    assert (
        json.loads(frames.SupervisionOut(session_id="s", action="joined", seq=4).dump())["seq"] == 4
    )
    ack = frames.WhisperAckOut(session_id="s", client_msg_id="c", whisper_id=2)
    assert json.loads(ack.dump()) == {
        "type": "whisper_ack",
        "session_id": "s",
        "client_msg_id": "c",
        "whisper_id": 2,
    }


def test_the_visitor_protocol_ignores_whispers() -> None:
    visitor = VisitorProtocol(
        now=0.0, hello_timeout_s=10.0, max_text_bytes=4096, rate=5.0, burst=20, disconnect_after=50
    )
    assert visitor.event({"kind": "whisper", "session_id": str(SID), "whisper_id": 1}) == []
    # And a visitor cannot send one: it is not a visitor frame type.
    with pytest.raises(visitor_frames.FrameError) as refused:
        visitor_frames.parse_client_frame(
            json.dumps({"type": "whisper", "text": "x"}), max_text_bytes=4096
        )
    assert refused.value.code == "unknown_frame_type"


def test_mute_hints_become_session_updates() -> None:
    until = "2026-12-01T12:10:00+00:00"
    # First the link forgets what it knew a mute withholds, then the dashboard hears of it.
    forget, started = session_event(SID, {"kind": "mute", "mute_id": "m", "until": until})
    assert forget == Call(ShieldChanged(SID))
    assert isinstance(started, Send)
    assert json.loads(started.text) == {
        "type": "session",
        "session_id": str(SID),
        "muted": True,
        "muted_until": until,
    }
    forget, ended = session_event(SID, {"kind": "mute", "mute_id": "m", "until": None})
    assert forget == Call(ShieldChanged(SID))
    assert isinstance(ended, Send)
    assert json.loads(ended.text) == {"type": "session", "session_id": str(SID), "muted": False}


def test_a_withheld_message_has_no_text_but_keeps_its_triage() -> None:
    out = frames.MessageOut(
        session_id="s",
        seq=3,
        sender="visitor",
        text=None,
        sent_at="t",
        level=1,
        signals=[],
        muted=True,
    )
    wire = json.loads(out.dump())
    assert (wire["text"], wire["muted"], wire["level"]) == (None, True, 1)
    plain = frames.MessageOut(session_id="s", seq=3, sender="visitor", text="x", sent_at="t")
    assert "muted" not in json.loads(plain.dump())
