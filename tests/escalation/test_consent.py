"""Consent for handoff extras end to end (issue 14, SPEC §5): a real uvicorn, real `websockets`
clients for the visitor and the volunteer, the fake partner's real HTTP server. The partner gets
the transcript and the number only when the visitor said yes to the question in the chat; never
a staff whisper; and nothing beyond the minimum when the visitor was not asked or said no."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.audit.models import Event
from app.chat.models import ChatSession, Message
from app.core.config import Settings
from app.core.db import transaction
from app.escalation.clock import build_payload
from app.escalation.models import Handoff
from tests.escalation.conftest import supervisor, volunteer_account
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

SAID = "my name is Sam and work has been so stressful lately"
WHISPER = "staff only: ask about work"
PHONE = "+1 555 010 0199"


async def _held(server: Any) -> tuple[VisitorClient, VolunteerClient]:
    volunteer = await VolunteerClient.connect(
        server.ws_url, (await volunteer_account(server)).token
    )
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say(SAID, "m1")
    await volunteer.expect("offer", about(visitor.session_id))
    await volunteer.send({"type": "accept", "session_id": visitor.session_id})
    await volunteer.expect("assigned", about(visitor.session_id))
    return visitor, volunteer


async def _ask(visitor: VisitorClient, volunteer: VolunteerClient) -> dict[str, Any]:
    await volunteer.send({"type": "ask_consent", "session_id": visitor.session_id})
    asked = await volunteer.expect("consent_asked", about(visitor.session_id))
    question = await visitor.expect("message", lambda f: f.get("kind") == "consent")
    assert question["seq"] == asked["seq"]
    assert question["sender"] == "system"
    assert question["asks"] == ["transcript", "contact"]
    assert "crisis line" in question["text"]
    return question


async def _events(server: Any, session_id: str) -> list[Event]:
    async with transaction(server.app.state.beacon.sessionmaker) as db:
        rows = await db.scalars(
            select(Event).where(Event.subject_id == session_id).order_by(Event.id)
        )
        return list(rows.all())


async def test_consented_transcript_and_number_reach_the_partner(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server = await partnered_server("consentline")
    visitor, volunteer = await _held(server)
    sid = visitor.session_id
    sup = await VolunteerClient.connect(server.ws_url, (await supervisor(server)).token)
    await sup.send({"type": "whisper", "session_id": sid, "client_msg_id": "w", "text": WHISPER})
    await sup.expect("whisper_ack", about(sid))
    question = await _ask(visitor, volunteer)

    await visitor.send(
        {"type": "consent", "transcript": True, "contact": True, "contact_number": PHONE}
    )
    confirmed = await visitor.expect("consent")
    assert (confirmed["transcript"], confirmed["contact"]) == (True, True)
    told = await volunteer.expect("session", lambda f: "consent" in f)
    assert told["consent"] == {"transcript": True, "contact": True}

    await volunteer.send({"type": "handoff", "session_id": sid})
    await volunteer.expect("handoff", about(sid))
    [received] = await partner.wait_for(1, within=10.0)
    body = received.payload
    assert body["consent"] == {"transcript": True, "contact": True, "location": False}
    assert body["contact"] == {"phone": PHONE}
    lines = [(m["seq"], m["sender"], m["text"]) for m in body["transcript"]]
    assert (1, "visitor", SAID) in lines
    assert (question["seq"], "system", question["text"]) in lines
    assert WHISPER not in str(body)

    events = await _events(server, sid)
    asked = [e for e in events if e.action == "consent_requested"]
    assert [(e.actor_type, e.actor_id) for e in asked] == [
        ("volunteer", volunteer.ready["volunteer_id"])
    ]
    [recorded] = [e for e in events if e.action == "consent_recorded"]
    assert recorded.actor_type == "visitor"
    assert recorded.details == {"transcript": True, "contact": True}
    assert all(PHONE not in str(e.details) for e in events)
    for client in (visitor, volunteer, sup):
        await client.close()


async def test_without_consent_the_partner_gets_only_the_minimum(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server = await partnered_server("minimumline")
    visitor, volunteer = await _held(server)
    sid = visitor.session_id

    # Not asked: an answer is refused with a stable code.
    await visitor.send({"type": "consent", "transcript": True, "contact": False})
    assert (await visitor.expect("error"))["code"] == "consent_not_requested"
    await _ask(visitor, volunteer)
    # Bad answers are refused; the socket stays open.
    await visitor.send({"type": "consent", "transcript": True, "contact": True})
    assert (await visitor.expect("error"))["code"] == "invalid_contact_number"
    await visitor.send(
        {"type": "consent", "transcript": True, "contact": True, "contact_number": "call me"}
    )
    assert (await visitor.expect("error"))["code"] == "invalid_contact_number"
    await visitor.send({"type": "consent", "transcript": "yes", "contact": False})
    assert (await visitor.expect("error"))["code"] == "invalid_frame"
    # The visitor says yes, then changes their mind: the last answer counts.
    await visitor.send(
        {"type": "consent", "transcript": True, "contact": True, "contact_number": PHONE}
    )
    await visitor.expect("consent")
    await visitor.send({"type": "consent", "transcript": False, "contact": False})
    declined = await visitor.expect("consent")
    assert (declined["transcript"], declined["contact"]) == (False, False)
    async with transaction(server.app.state.beacon.sessionmaker) as db:
        row = await db.scalar(select(ChatSession).where(ChatSession.id == uuid.UUID(sid)))
    assert row is not None
    assert row.contact_phone is None

    await volunteer.send({"type": "handoff", "session_id": sid})
    await volunteer.expect("handoff", about(sid))
    [received] = await partner.wait_for(1, within=10.0)
    body = received.payload
    assert body["consent"] == {"transcript": False, "contact": False, "location": False}
    assert "transcript" not in body
    assert "contact" not in body
    assert SAID not in str(body)
    assert PHONE not in str(body)
    for key in ("session_id", "urgency", "signals", "locale"):
        assert key in body
    async with transaction(server.app.state.beacon.sessionmaker) as db:
        stored = await db.scalar(
            select(Handoff.payload).where(
                Handoff.session_id == uuid.UUID(sid), Handoff.trigger == "volunteer_request"
            )
        )
    assert stored is not None
    assert "transcript" not in stored
    for client in (visitor, volunteer):
        await client.close()


def _session(**consent: Any) -> ChatSession:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return ChatSession(
        id=uuid.uuid4(), urgency=4, signals=[], locale="en", created_at=now, **consent
    )


def _message(seq: int, text: str | None) -> Message:
    return Message(
        seq=seq, sender="visitor", text=text, sent_at=datetime(2026, 12, 1, tzinfo=UTC), kind=None
    )


def test_each_extra_is_shared_only_with_its_own_consent() -> None:
    handoff = Handoff(id=uuid.uuid4(), trigger="auto", active_rescue=False)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    settings = Settings()
    transcript = [_message(1, "hello"), _message(2, None)]
    only_transcript = build_payload(
        handoff,
        _session(consent_transcript=True, consent_contact=False, contact_phone=None),
        settings,
        now,
        transcript,
    )
    assert [m["text"] for m in only_transcript["transcript"]] == ["hello"]  # erased lines: none
    assert "contact" not in only_transcript
    only_contact = build_payload(
        handoff,
        _session(consent_transcript=False, consent_contact=True, contact_phone=PHONE),
        settings,
        now,
        transcript,
    )
    assert only_contact["contact"] == {"phone": PHONE}
    assert "transcript" not in only_contact
    # A yes without a number shares nothing (and says so).
    no_number = build_payload(
        handoff,
        _session(consent_transcript=None, consent_contact=True, contact_phone=None),
        settings,
        now,
    )
    assert no_number["consent"] == {"transcript": False, "contact": False, "location": False}
    assert "contact" not in no_number
