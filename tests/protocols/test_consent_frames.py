"""The consent frames of the visitor socket (issue 14) without a socket or database, and the
volunteer protocol's update when the visitor answers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from app.chat import frames
from app.chat.protocol import GiveConsent, VisitorProtocol
from app.core.wsloop import Call, Send, TextIn
from app.routing import frames as volunteer_frames
from app.routing.protocol import Handle, VolunteerProtocol, session_event

SID = uuid.UUID("00000000-0000-4000-8000-000000000003")


def opened() -> VisitorProtocol:
    p = VisitorProtocol(
        now=0.0, hello_timeout_s=10.0, max_text_bytes=4096, rate=5.0, burst=20, disconnect_after=50
    )
    p.receive(TextIn(json.dumps({"type": "hello"})), 0.0)
    p.opened(queueable=True)
    return p


def answer(frame: dict[str, Any]) -> Any:
    [action] = opened().receive(TextIn(json.dumps({"type": "consent", **frame})), 1.0)
    return action


@pytest.mark.parametrize(
    "frame",
    [
        {"transcript": True, "contact": False},
        {"transcript": False, "contact": False, "contact_number": "+1 555 0100"},
        {"transcript": False, "contact": True, "contact_number": "+34 600 12 34 56"},
        {"transcript": True, "contact": True, "contact_number": "(555) 010-0199"},
    ],
)
def test_answers_become_a_command(frame: dict[str, Any]) -> None:
    action = answer(frame)
    assert isinstance(action, Call)
    assert isinstance(action.command, GiveConsent)
    assert action.command.frame.transcript is frame["transcript"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"transcript": True, "contact": True}, "invalid_contact_number"),
        (
            {"transcript": True, "contact": True, "contact_number": "call me"},
            "invalid_contact_number",
        ),
        ({"transcript": True, "contact": True, "contact_number": "12"}, "invalid_contact_number"),
        ({"transcript": True, "contact": True, "contact_number": "1" * 33}, "invalid_frame"),
        ({"transcript": "yes", "contact": False}, "invalid_frame"),
        ({"transcript": 1, "contact": False}, "invalid_frame"),
        ({"contact": False}, "invalid_frame"),
    ],
)
def test_bad_answers_get_stable_codes(frame: dict[str, Any], code: str) -> None:
    action = answer(frame)
    assert isinstance(action, Send)
    assert json.loads(action.text)["code"] == code


def test_outcomes_and_the_question_on_the_wire() -> None:
    [ok] = VisitorProtocol.consent_recorded(True, False)
    assert isinstance(ok, Send)
    assert json.loads(ok.text) == {"type": "consent", "transcript": True, "contact": False}
    [refused] = VisitorProtocol.consent_refused(frames.ErrorCode.consent_not_requested)
    assert isinstance(refused, Send)
    assert json.loads(refused.text)["code"] == "consent_not_requested"
    from datetime import UTC, datetime

    at = datetime(2026, 12, 1, tzinfo=UTC)
    question = frames.MessageOut.of(
        seq=4, sender="system", text="May we?", sent_at=at, kind="consent"
    )
    assert json.loads(question.dump())["asks"] == ["transcript", "contact"]
    plain = frames.MessageOut.of(seq=5, sender="volunteer", text="hi", sent_at=at)
    assert "asks" not in json.loads(plain.dump())
    # The visitor's bus channel hears the answer's hint and shows nothing for it.
    assert opened().event({"kind": "consent", "transcript": True, "contact": True}) == []


def test_the_volunteer_asks_and_hears_the_answer() -> None:
    p = VolunteerProtocol(now=0.0, auth_timeout_s=10.0, rate=20.0, burst=100, disconnect_after=200)
    p.receive(TextIn(json.dumps({"type": "auth", "token": "bv_x"})), 0.0)
    p.authenticated()
    [call] = p.receive(TextIn(json.dumps({"type": "ask_consent", "session_id": str(SID)})), 1.0)
    assert isinstance(call, Call)
    assert isinstance(call.command, Handle)
    assert isinstance(call.command.frame, volunteer_frames.AskConsentFrame)
    [update] = session_event(SID, {"kind": "consent", "transcript": True, "contact": False})
    assert isinstance(update, Send)
    assert json.loads(update.text) == {
        "type": "session",
        "session_id": str(SID),
        "consent": {"transcript": True, "contact": False},
    }
    assert session_event(SID, {"kind": "consent", "transcript": "yes", "contact": False}) == []
