"""A chat a volunteer already holds turns imminent (real uvicorn, real triage, real sockets): the
volunteer and supervisors are alerted at once, the visitor gets the short in-chat safety message
once, and no clock runs - unless the chat is later left unanswered again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import Event
from app.chat.models import Message
from app.core.db import transaction
from app.escalation.models import Handoff
from app.routing.accounts import IssuedAccount
from tests.escalation.conftest import (
    FAST,
    URGENT_TEXT,
    alert_about,
    handoffs_of,
    is_safety,
    stored_urgency,
    supervisor,
    volunteer_account,
)
from tests.escalation.partner_server import PartnerServer
from tests.routing.wsclient import VisitorClient, VolunteerClient, about


async def _in_a_chat(
    partnered_server: Callable[..., Any], name: str
) -> tuple[PartnerServer, Any, VolunteerClient, VolunteerClient, VisitorClient, IssuedAccount]:
    """A calm visitor whose chat a volunteer has accepted, with a supervisor watching."""
    partner, server = await partnered_server(name)
    sup_ws = await VolunteerClient.connect(server.ws_url, (await supervisor(server)).token)
    account = await volunteer_account(server)
    volunteer = await VolunteerClient.connect(server.ws_url, account.token)
    visitor = await VisitorClient.open(server.ws_url, locale="en-GB")
    await visitor.say("hi, can someone talk with me", "m1")
    await volunteer.expect("offer", about(visitor.session_id))
    await volunteer.send({"type": "accept", "session_id": visitor.session_id})
    await volunteer.expect("assigned", about(visitor.session_id))
    await visitor.expect("status", lambda f: f["status"] == "active", within=10.0)
    return partner, server, sup_ws, volunteer, visitor, account


async def test_active_chat_turning_imminent_alerts_the_volunteer_and_tells_the_visitor_once(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server, sup_ws, volunteer, visitor, account = await _in_a_chat(
        partnered_server, "inchatline"
    )
    await visitor.say(URGENT_TEXT, "m2")

    safety = await visitor.expect("message", is_safety, within=10.0)
    text = safety["text"]
    assert "999" in text  # en-GB: the route to immediate help
    assert "trained person" not in text  # one is already here: no "someone is coming"
    assert partner.phone not in text  # and no other line to call instead of this chat
    assert "pill" not in text.lower()

    alert = await volunteer.expect(
        "alert", lambda f: f.get("reason") == "imminent_in_chat", within=10.0
    )
    assert alert["session_id"] == visitor.session_id
    assert alert["urgency"] == "imminent"
    assert alert["urgency_value"] == 4
    assert "method:overdose" in alert["signals"]
    # The volunteer sees in the transcript exactly what the visitor was told.
    shown = await volunteer.expect(
        "message", lambda f: f.get("session_id") == visitor.session_id and is_safety(f)
    )
    assert shown["text"] == text
    sup_alert = await sup_ws.expect(
        "alert", alert_about(visitor.session_id, "imminent_in_chat"), within=10.0
    )
    assert sup_alert["volunteer_ids"] == [str(account.id)]
    assert await stored_urgency(server, visitor.session_id) == 4

    # Once: a second imminent message changes nothing, and past the imminent deadline there is
    # no handoff (a human is there) - the visitor hears nothing more from the system.
    await visitor.say("I really want to die tonight, I took them all", "m3")
    with pytest.raises(TimeoutError):
        await visitor.expect(
            "message", lambda f: f["sender"] == "system", within=FAST["handoff_deadline_s"] + 1.0
        )
    assert partner.received == []
    assert not [
        f
        for f in await volunteer.drain()
        if f.get("type") == "alert" and f.get("session_id") == visitor.session_id
    ]

    async with transaction(server.app.state.beacon.sessionmaker) as db:
        session_id = uuid.UUID(visitor.session_id)
        handoffs = (await db.scalars(select(Handoff).where(Handoff.session_id == session_id))).all()
        system_messages = (
            await db.scalars(
                select(Message).where(Message.session_id == session_id, Message.sender == "system")
            )
        ).all()
        actions = [
            e.action
            for e in (
                await db.scalars(select(Event).where(Event.subject_id == visitor.session_id))
            ).all()
        ]
    assert [(h.status, h.trigger, h.level) for h in handoffs] == [("not_needed", "in_chat", 4)]
    assert handoffs[0].safety_sent_at is not None
    assert [m.kind for m in system_messages] == ["safety"]
    assert actions.count("escalation_in_chat") == 1
    assert actions.count("safety_message_sent") == 1
    assert "handoff_started" not in actions
    for client in (sup_ws, volunteer, visitor):
        await client.close()


async def test_imminent_chat_left_unanswered_again_gets_its_own_clock(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server, sup_ws, volunteer, visitor, _ = await _in_a_chat(
        partnered_server, "requeueline"
    )
    await visitor.say(URGENT_TEXT, "m2")
    await visitor.expect("message", is_safety, within=10.0)
    await volunteer.expect("alert", lambda f: f.get("reason") == "imminent_in_chat", within=10.0)

    # The volunteer lets go (and logs off): the visitor waits again, imminent, nobody to answer.
    await volunteer.send({"type": "release", "session_id": visitor.session_id})
    await volunteer.expect("session", about(visitor.session_id, status="released"), within=10.0)
    await volunteer.close()
    started = await sup_ws.expect(
        "alert", alert_about(visitor.session_id, "escalation_started"), within=10.0
    )
    assert started["urgency"] == "imminent"
    coming = await visitor.expect("message", is_safety, within=10.0)
    assert "trained person" in coming["text"]  # unanswered again: the usual message
    received = await partner.wait_for(1, within=FAST["handoff_deadline_s"] + 3.0)
    assert received[0].payload["session_id"] == visitor.session_id
    assert received[0].payload["reason"] == "no_volunteer_in_time"
    handoffs = await handoffs_of(server, visitor.session_id)
    assert (handoffs[0].trigger, handoffs[0].status) == ("in_chat", "not_needed")
    assert [h.trigger for h in handoffs] == ["in_chat", "auto"]
    assert str(handoffs[1].id) == received[0].headers["idempotency-key"]
    for client in (sup_ws, visitor):
        await client.close()
