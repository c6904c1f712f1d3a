"""``visitor_protocol`` without a socket or a database: frames in, actions out (in the style of
python-websockets' tests/test_protocol.py). The live socket is covered end to end in
tests/chat/test_visitor_ws.py; here every rule is checked on its own, with a fake clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.chat import frames
from app.chat.protocol import (
    Deliver,
    End,
    Open,
    Resync,
    ShowStatus,
    State,
    Submit,
    Typing,
    VisitorProtocol,
)
from app.core.wsloop import Action, BinaryIn, Call, Close, Send, TextIn


def protocol(
    *, now: float = 100.0, rate: float = 10.0, burst: int = 50, disconnect_after: int = 30
) -> VisitorProtocol:
    return VisitorProtocol(
        now=now,
        hello_timeout_s=10.0,
        max_text_bytes=64,
        rate=rate,
        burst=burst,
        disconnect_after=disconnect_after,
    )


def text(frame: dict[str, Any]) -> TextIn:
    return TextIn(json.dumps(frame))


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    return [json.loads(a.text) for a in actions if isinstance(a, Send)]


def closes(actions: list[Action]) -> list[tuple[int, str]]:
    return [(a.code, a.reason) for a in actions if isinstance(a, Close)]


def opened(now: float = 100.0, **kwargs: Any) -> VisitorProtocol:
    p = protocol(now=now, **kwargs)
    [call] = p.receive(text({"type": "hello"}), now)
    assert isinstance(call, Call)
    assert isinstance(call.command, Open)
    p.opened(queueable=False)
    return p


# -- hello -------------------------------------------------------------------------------------


def test_hello_asks_to_open_and_reads_nothing_meanwhile() -> None:
    p = protocol()
    [call] = p.receive(text({"type": "hello", "locale": "pt-BR", "resume_token": None}), 100.0)
    assert isinstance(call, Call)
    assert isinstance(call.command, Open)
    assert call.command.hello.locale == "pt-BR"
    assert p.state is State.opening
    assert p.deadline is None
    assert p.receive(text({"type": "ping"}), 100.1) == []
    p.opened(queueable=True)
    assert p.state.value == "open"
    assert p.queueable


def test_first_frame_not_hello_is_refused_with_1008() -> None:
    p = protocol()
    actions = p.receive(text({"type": "ping"}), 100.0)
    assert [f["code"] for f in sent(actions)] == ["hello_required"]
    assert closes(actions) == [(1008, "hello required")]
    assert p.closing
    assert p.receive(text({"type": "hello"}), 100.1) == []


def test_bad_frames_before_hello_are_answered_and_the_wait_goes_on() -> None:
    p = protocol()
    for raw, code in (
        ("{nope", "invalid_json"),
        ('{"type":"shout"}', "unknown_frame_type"),
        ('{"type":"hello","last_seq":"5"}', "invalid_frame"),
        ("[1]", "invalid_frame"),
    ):
        actions = p.receive(TextIn(raw), 100.0)
        assert [f["code"] for f in sent(actions)] == [code]
        assert closes(actions) == []
    assert p.state is State.hello
    assert p.receive(text({"type": "hello", "extra": {"ignored": True}}), 100.0) != []


def test_hello_timeout_is_due_at_the_deadline_only() -> None:
    p = protocol(now=100.0)
    assert p.deadline == 110.0
    assert p.timeout(109.9) == []
    actions = p.timeout(110.0)
    assert [f["code"] for f in sent(actions)] == ["hello_timeout"]
    assert closes(actions) == [(1008, "hello timeout")]
    assert p.deadline is None


def test_opened_protocol_has_no_deadline() -> None:
    p = opened()
    assert p.deadline is None
    assert p.timeout(1e9) == []


def test_binary_frame_closes_with_1003_without_an_error_frame() -> None:
    for p in (protocol(), opened()):
        actions = p.receive(BinaryIn(), 100.0)
        assert actions == [Close(1003, "binary frames are not supported")]
        assert p.closing


# -- open --------------------------------------------------------------------------------------


def test_message_is_submitted_and_delete_erases() -> None:
    p = opened()
    [call] = p.receive(text({"type": "message", "client_msg_id": "a", "text": "hi"}), 100.0)
    assert isinstance(call, Call)
    assert isinstance(call.command, Submit)
    assert call.command.frame.client_msg_id == "a"
    [call] = p.receive(text({"type": "message", "client_msg_id": "b", "text": " DELETE \n"}), 100)
    assert call == Call(End(erase=True))
    assert p.quiet  # its own status change must not race the confirmation


def test_close_frame_ends_the_chat_and_confirms() -> None:
    p = opened()
    assert p.receive(text({"type": "close"}), 100.0) == [Call(End(erase=False))]
    actions = p.ended(erase=False)
    assert sent(actions) == [
        {
            "type": "status",
            "status": "closed",
            "queue_position": None,
            "estimated_wait_s": None,
            "reason": "visitor_closed",
        }
    ]
    assert closes(actions) == [(1000, "chat closed")]
    assert p.closing


def test_failed_end_reopens_status_announcements() -> None:
    p = opened()
    p.receive(text({"type": "close"}), 100.0)
    assert [f["code"] for f in sent(p.end_failed())] == ["temporarily_unavailable"]
    assert not p.quiet
    assert sent(p.show_status("active"))[0]["status"] == "active"


def test_ping_pong_and_second_hello() -> None:
    p = opened()
    assert sent(p.receive(text({"type": "ping"}), 100.0)) == [{"type": "pong"}]
    actions = p.receive(text({"type": "hello"}), 100.0)
    assert [(f["code"], f["detail"]) for f in sent(actions)] == [
        ("invalid_frame", "hello was already received")
    ]
    assert not p.closing


def test_typing_is_passed_on_at_most_every_two_seconds() -> None:
    p = opened()
    typing = text({"type": "typing"})
    assert p.receive(typing, 100.0) == [Call(Typing())]
    assert p.receive(typing, 101.9) == []
    assert p.receive(typing, 102.0) == [Call(Typing())]


def test_invalid_message_names_its_client_msg_id() -> None:
    p = opened()
    too_long = text({"type": "message", "client_msg_id": "m1", "text": "x" * 65})
    [error] = sent(p.receive(too_long, 100.0))
    assert error["code"] == "text_too_large"
    assert error["client_msg_id"] == "m1"
    blank = text({"type": "message", "client_msg_id": "m2", "text": "  "})
    [error] = sent(p.receive(blank, 100.0))
    assert error["code"] == "invalid_frame"
    assert error["client_msg_id"] == "m2"


def test_not_stored_messages_get_their_own_error_codes() -> None:
    [closed] = sent(VisitorProtocol.not_stored("m", closed=True))
    [away] = sent(VisitorProtocol.not_stored("m", closed=False))
    assert (closed["code"], closed["client_msg_id"]) == ("session_closed", "m")
    assert (away["code"], away["client_msg_id"]) == ("temporarily_unavailable", "m")


# -- flooding ----------------------------------------------------------------------------------


def test_flood_is_refused_then_closed_and_the_hello_counts() -> None:
    p = opened(rate=1.0, burst=3, disconnect_after=2)
    ping = text({"type": "ping"})
    answers = [p.receive(ping, 100.0) for _ in range(4)]
    # The hello took one token of three.
    assert [sent(a)[0]["type"] for a in answers[:2]] == ["pong", "pong"]
    assert [sent(a)[0]["code"] for a in answers[2:]] == ["rate_limited", "rate_limited"]
    actions = p.receive(ping, 100.0)
    assert [f["code"] for f in sent(actions)] == ["rate_limited"]
    assert closes(actions) == [(1008, "rate limit exceeded")]


def test_slowing_down_is_forgiven() -> None:
    p = opened(rate=2.0, burst=1, disconnect_after=3)
    ping = text({"type": "ping"})
    assert sent(p.receive(ping, 100.0))[0]["code"] == "rate_limited"
    for step in range(1, 200):
        assert sent(p.receive(ping, 100.0 + step * 0.5)) == [{"type": "pong"}]


# -- what the visitor sees ---------------------------------------------------------------------


def test_status_frames_are_deduplicated_and_internal_states_mapped() -> None:
    p = opened()
    [first] = sent(p.show_status("waiting"))
    assert first == {
        "type": "status",
        "status": "waiting",
        "queue_position": None,
        "estimated_wait_s": None,
    }
    assert p.show_status("waiting") == []
    assert sent(p.queue_moved(3, 120))[0]["queue_position"] == 3
    assert p.queue_moved(3, 120) == []
    [active] = sent(p.show_status("transferring", 3, 120))
    assert (active["status"], active["queue_position"]) == ("active", None)
    assert p.queue_moved(1, 10) == []  # not waiting: no place to show


@pytest.mark.parametrize("status", ["closed", "abandoned"])
def test_terminal_status_is_shown_as_closed_and_closes_1000(status: str) -> None:
    p = opened()
    actions = p.show_status(status)
    assert [f["status"] for f in sent(actions)] == ["closed"]
    assert closes(actions) == [(1000, "chat closed")]
    assert p.show_status("waiting") == []


def test_queue_place_is_looked_up_only_once_the_visitor_spoke() -> None:
    p = opened()
    assert not p.wants_queue_place("waiting")
    p.stored()
    assert p.wants_queue_place("waiting")
    assert not p.wants_queue_place("active")


def test_refusals_while_opening_close_with_their_codes() -> None:
    p = protocol()
    p.receive(text({"type": "hello"}), 100.0)
    actions = p.too_many_sessions(retry_after_s=2.2)
    [error] = sent(actions)
    assert (error["code"], error["retry_after_s"]) == ("too_many_sessions", 3)
    assert closes(actions) == [(1013, "too many sessions")]
    assert closes(protocol().invalid_resume_token()) == [(1008, "invalid resume token")]
    assert closes(protocol().unavailable()) == [(1013, "try again later")]
    assert closes(protocol().internal_error()) == [(1011, "internal error")]


def test_server_frames_keep_their_wire_shape() -> None:
    """Optional fields are left out when unset, never sent as null (docs/protocol.md)."""
    assert json.loads(frames.ErrorOut(code="x", detail="d").dump()) == {
        "type": "error",
        "code": "x",
        "detail": "d",
    }
    assert frames.AckOut(client_msg_id="é", seq=3).dump() == (
        '{"type":"ack","client_msg_id":"é","seq":3}'
    )


# -- what the bus brings -------------------------------------------------------------------------


def test_bus_payloads_become_deliveries_statuses_and_typing() -> None:
    p = opened()
    hint = {"kind": "message", "seq": 4, "sender": "volunteer", "client_msg_id": None}
    assert p.event(hint) == [Call(Deliver(4, "volunteer", None))]
    assert p.event({"kind": "message", "seq": "4"}) == []
    assert p.event({"kind": "status", "status": "active"}) == [Call(ShowStatus("active"))]
    assert p.event({"kind": "resync"}) == [Call(Resync())]
    assert sent(p.event({"kind": "typing", "sender": "volunteer"})) == [
        {"type": "typing", "sender": "volunteer"}
    ]
    assert p.event({"kind": "typing", "sender": "visitor"}) == []  # our own, not echoed
    assert p.event({"kind": "erased"}) == []
    assert p.event({"kind": "urgency", "urgency": 4}) == []  # never shown to the visitor


def test_queue_position_from_the_monitor_is_shown_only_while_waiting() -> None:
    p = opened()
    p.show_status("waiting")
    [frame] = sent(p.event({"kind": "queue_info", "position": 2, "estimated_wait_s": 60}))
    assert (frame["queue_position"], frame["estimated_wait_s"]) == (2, 60)
    p.show_status("active")
    assert p.event({"kind": "queue_info", "position": 1, "estimated_wait_s": 5}) == []


def test_erased_elsewhere_the_closed_status_says_so() -> None:
    # DELETE over HTTP (or another tab) while this socket is open: "erased" comes first on the
    # session's channel, then the closed status.
    p = opened()
    assert p.event({"kind": "erased", "session_id": "s"}) == []
    actions = p.show_status("closed")
    assert sent(actions)[0]["reason"] == "erased"
    assert closes(actions) == [(1000, "chat closed")]


def test_closed_by_someone_else_has_no_reason() -> None:
    [frame] = sent(opened().show_status("closed"))
    assert "reason" not in frame
