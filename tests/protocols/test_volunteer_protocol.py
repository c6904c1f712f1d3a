"""``volunteer_protocol`` without a socket or a database: frames in, actions out. The live
socket is covered end to end in tests/routing/test_volunteer_ws*.py."""

from __future__ import annotations

import json
import uuid
from typing import Any

from app.core.errors import Unauthorized
from app.core.wsloop import Action, BinaryIn, Call, Close, Send, TextIn
from app.routing import frames
from app.routing.protocol import (
    Authenticate,
    Flush,
    Handle,
    Handoff,
    Hold,
    LetGo,
    ShieldChanged,
    Snapshot,
    State,
    VolunteerProtocol,
    alert_event,
    personal_event,
    session_event,
)

SID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def protocol(
    *, rate: float = 20.0, burst: int = 100, disconnect_after: int = 200
) -> VolunteerProtocol:
    return VolunteerProtocol(
        now=0.0, auth_timeout_s=10.0, rate=rate, burst=burst, disconnect_after=disconnect_after
    )


def text(frame: dict[str, Any]) -> TextIn:
    return TextIn(json.dumps(frame))


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    return [json.loads(a.text) for a in actions if isinstance(a, Send)]


def closes(actions: list[Action]) -> list[int]:
    return [a.code for a in actions if isinstance(a, Close)]


def authed(**kwargs: Any) -> VolunteerProtocol:
    p = protocol(**kwargs)
    [call] = p.receive(text({"type": "auth", "token": "bv_x"}), 0.0)
    assert isinstance(call, Call)
    assert isinstance(call.command, Authenticate)
    p.authenticated()
    return p


def test_auth_is_asked_for_with_its_resume_points() -> None:
    p = protocol()
    [call] = p.receive(text({"type": "auth", "token": "bv_x", "last_seq": {str(SID): 4}}), 0.0)
    assert isinstance(call, Call)
    assert isinstance(call.command, Authenticate)
    assert call.command.frame.last_seq == {SID: 4}
    assert p.state is State.authenticating
    assert p.deadline is None
    assert p.receive(text({"type": "ping"}), 0.1) == []


def test_anything_but_auth_first_closes_1008() -> None:
    for raw, code in (
        ('{"type":"ping"}', "unauthorized"),
        ("{nope", "invalid_json"),
        ('{"type":"auth"}', "invalid_frame"),
        ('{"type":"bogus"}', "unknown_frame_type"),
    ):
        p = protocol()
        actions = p.receive(TextIn(raw), 0.0)
        assert [f["code"] for f in sent(actions)] == [code]
        assert closes(actions) == [1008]
        assert p.closing


def test_auth_timeout_and_refused_token() -> None:
    p = protocol()
    assert p.deadline == 10.0
    assert p.timeout(9.0) == []
    actions = p.timeout(10.0)
    assert [f["code"] for f in sent(actions)] == ["auth_timeout"]
    assert closes(actions) == [1008]

    p = protocol()
    p.receive(text({"type": "auth", "token": "bv_x"}), 0.0)
    actions = p.unauthorized(Unauthorized("invalid or expired token"))
    assert sent(actions) == [
        {"type": "error", "code": "unauthorized", "detail": "invalid or expired token"}
    ]
    assert closes(actions) == [1008]


def test_database_away_closes_1013_while_connecting_and_refuses_the_frame_after() -> None:
    p = protocol()
    p.receive(text({"type": "auth", "token": "bv_x"}), 0.0)
    actions = p.unavailable()
    assert [f["code"] for f in sent(actions)] == ["temporarily_unavailable"]
    assert closes(actions) == [1013]

    p = authed()
    frame = frames.parse_client_frame(json.dumps({"type": "accept", "session_id": str(SID)}))
    [error] = sent(p.unavailable(frame))
    assert (error["code"], error["session_id"]) == ("temporarily_unavailable", str(SID))
    assert not p.closing


def test_binary_closes_1003_before_and_after_auth() -> None:
    for p in (protocol(), authed()):
        actions = p.receive(BinaryIn(), 0.0)
        assert [f["code"] for f in sent(actions)] == ["binary_not_supported"]
        assert closes(actions) == [1003]


def test_frames_after_auth_become_commands() -> None:
    p = authed()
    [call] = p.receive(text({"type": "accept", "session_id": str(SID)}), 0.0)
    assert isinstance(call, Call)
    assert isinstance(call.command, Handle)
    assert isinstance(call.command.frame, frames.AcceptFrame)
    [call] = p.receive(text({"type": "handoff", "session_id": str(SID)}), 0.0)
    assert isinstance(call, Call)
    assert isinstance(call.command, Handoff)


def test_bad_frames_after_auth_get_stable_codes_and_keep_the_socket() -> None:
    p = authed()
    for raw, code in (
        ("{nope", "invalid_json"),
        ('{"type":"bogus"}', "unknown_frame_type"),
        ('{"type":"accept"}', "invalid_frame"),
        ('{"type":"auth","token":"bv_x"}', "unexpected_frame"),
        (
            json.dumps(
                {"type": "message", "session_id": str(SID), "client_msg_id": "c", "text": " "}
            ),
            "invalid_frame",
        ),
    ):
        actions = p.receive(TextIn(raw), 0.0)
        assert [f["code"] for f in sent(actions)] == [code], raw
        assert closes(actions) == []
    assert not p.closing


def test_refusal_echoes_the_session_and_message() -> None:
    frame = frames.parse_client_frame(
        json.dumps({"type": "message", "session_id": str(SID), "client_msg_id": "c1", "text": "x"})
    )
    [error] = sent(VolunteerProtocol.refused(frame, Unauthorized("nope")))
    assert error == {
        "type": "error",
        "code": "unauthorized",
        "detail": "nope",
        "session_id": str(SID),
        "client_msg_id": "c1",
    }


def test_flood_limit_is_the_configured_one_and_the_auth_frame_is_free() -> None:
    p = authed(rate=20.0, burst=100, disconnect_after=200)
    ping = text({"type": "ping"})
    calls = [p.receive(ping, 0.0) for _ in range(100)]
    assert all(isinstance(a[0], Call) for a in calls)
    refusals = [p.receive(ping, 0.0) for _ in range(200)]
    assert {sent(a)[0]["code"] for a in refusals} == {"rate_limited"}
    assert not p.closing
    actions = p.receive(ping, 0.0)
    assert closes(actions) == [1008]
    assert p.closing


def test_sustained_rate_is_allowed_forever() -> None:
    p = authed(rate=20.0, burst=1, disconnect_after=3)
    for step in range(1, 2000):
        [action] = p.receive(text({"type": "ping"}), step / 20.0)
        assert isinstance(action, Call)


def test_frames_are_strict_and_ignore_unknown_fields_like_the_visitor_socket() -> None:
    p = authed()
    sync = {"type": "sync", "session_id": str(SID), "last_seq": "3"}
    [error] = sent(p.receive(text(sync), 0.0))
    assert error["code"] == "invalid_frame"
    [call] = p.receive(text({**sync, "last_seq": 3, "from_a_newer_client": True}), 0.0)
    assert isinstance(call, Call)
    assert call.command.frame == frames.SyncFrame(type="sync", session_id=SID, last_seq=3)


# -- what the bus brings -------------------------------------------------------------------------


def test_personal_frames_are_passed_on_and_decide_what_is_held() -> None:
    assigned = {"type": "assigned", "session_id": str(SID), "urgency": "high"}
    actions = personal_event(assigned)
    assert sent(actions) == [assigned]
    assert actions[1:] == [Call(Hold(SID))]
    released = {"type": "session", "session_id": str(SID), "status": "released"}
    assert personal_event(released)[1:] == [Call(LetGo(SID))]
    declined = {"type": "session", "session_id": str(SID), "status": "offer_declined"}
    assert personal_event(declined)[1:] == []
    assert personal_event({"kind": "resync"}) == [Call(Snapshot())]
    assert personal_event({"kind": "no type"}) == []


def test_session_payloads_become_updates_typing_or_a_flush() -> None:
    [status] = sent(session_event(SID, {"kind": "status", "status": "transferring"}))
    assert status == {"type": "session", "session_id": str(SID), "status": "transferring"}
    [rise] = sent(session_event(SID, {"kind": "urgency", "urgency": 3, "previous": 1}))
    assert rise == {
        "type": "session",
        "session_id": str(SID),
        "urgency": "high",
        "urgency_value": 3,
    }
    assert sent(session_event(SID, {"kind": "typing", "sender": "visitor"})) == [
        {"type": "typing", "session_id": str(SID)}
    ]
    assert session_event(SID, {"kind": "typing", "sender": "volunteer"}) == []
    assert session_event(SID, {"kind": "message", "seq": 3}) == [Call(Flush(SID, upto=3))]
    assert session_event(SID, {"kind": "resync"}) == [
        Call(ShieldChanged(SID)),
        Call(Flush(SID)),
    ]


def test_supervisors_hear_rises_to_high_and_the_supervisors_channel() -> None:
    rise = {"kind": "urgency", "session_id": str(SID), "urgency": 4}
    [alert] = sent(alert_event(rise, queue_channel=True))
    assert alert == {
        "type": "alert",
        "session_id": str(SID),
        "urgency": "imminent",
        "urgency_value": 4,
        "reason": "urgency_raised",
    }
    assert alert_event({**rise, "urgency": 2}, queue_channel=True) == []
    assert alert_event({"kind": "queued", "urgency": 4}, queue_channel=True) == []
    handoff = {"type": "x", "reason": "handoff_failed", "session_id": str(SID), "attempts": 3}
    [passed_on] = sent(alert_event(handoff, queue_channel=False))
    assert passed_on == {
        "type": "alert",
        "reason": "handoff_failed",
        "session_id": str(SID),
        "attempts": 3,
    }
    assert alert_event({"kind": "resync"}, queue_channel=False) == []
