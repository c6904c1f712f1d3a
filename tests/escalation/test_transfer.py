"""A warm transfer is not an unanswered chat (real uvicorn, real triage, real sockets): while the
current volunteer still holds the chat and another is being offered it, a turn to imminent takes
the in-chat path - the holder and supervisors are alerted, the visitor gets the in-chat safety
message once, and no clock runs that could hand the visitor to a partner mid-conversation."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import Event
from app.chat.models import ChatSession, Message
from app.core.db import transaction
from app.escalation.models import Handoff
from tests.escalation.conftest import (
    FAST,
    URGENT_TEXT,
    alert_about,
    is_safety,
    stored_urgency,
    supervisor,
    volunteer_account,
)
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

# The transfer offer must stay open for the whole test (well past the handoff deadline).
SETTINGS: dict[str, Any] = {**FAST, "offer_timeout_s": 60.0}


def _in_chat_alert(session_id: str) -> Callable[[dict[str, Any]], bool]:
    return alert_about(session_id, "imminent_in_chat")


async def test_chat_turning_imminent_mid_warm_transfer_takes_the_in_chat_path(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server = await partnered_server("transferline", **SETTINGS)
    sup_ws = await VolunteerClient.connect(server.ws_url, (await supervisor(server)).token)
    a_account = await volunteer_account(server)
    a = await VolunteerClient.connect(server.ws_url, a_account.token)
    visitor = await VisitorClient.open(server.ws_url, locale="en-GB")
    sid = visitor.session_id
    await visitor.say("hi, can someone talk with me", "m1")
    await a.expect("offer", about(sid))
    await a.send({"type": "accept", "session_id": sid})
    await a.expect("assigned", about(sid))
    await visitor.expect("status", lambda f: f["status"] == "active", within=10.0)

    # A offers the chat to B and stays in it until B accepts (B never does in this test).
    b_account = await volunteer_account(server)
    b = await VolunteerClient.connect(server.ws_url, b_account.token)
    await a.send({"type": "transfer", "session_id": sid, "to_volunteer_id": str(b_account.id)})
    offer = await b.expect("offer", about(sid), within=10.0)
    assert offer["kind"] == "transfer"

    await visitor.say(URGENT_TEXT, "m2")
    alert = await a.expect("alert", _in_chat_alert(sid), within=10.0)
    assert alert["urgency"] == "imminent"
    assert "method:overdose" in alert["signals"]
    sup_alert = await sup_ws.expect("alert", _in_chat_alert(sid), within=10.0)
    assert sup_alert["volunteer_ids"] == [str(a_account.id)]
    safety = await visitor.expect("message", is_safety, within=10.0)
    assert "999" in safety["text"]  # en-GB: the route to immediate help
    assert "trained person" not in safety["text"]  # one is here: not the waiting-room message
    assert await stored_urgency(server, sid) == 4

    # Past the imminent deadline: nothing more for the visitor, no partner POST, no clock.
    with pytest.raises(TimeoutError):
        await visitor.expect(
            "message",
            lambda f: f["sender"] == "system",
            within=SETTINGS["handoff_deadline_s"] + 1.5,
        )
    assert partner.received == []
    late = [f for f in await sup_ws.drain() if f.get("session_id") == sid]
    assert not [f for f in late if f.get("reason") in ("escalation_started", "handoff_started")]
    assert not [f for f in await b.drain() if f.get("type") == "alert"]

    async with transaction(server.app.state.beacon.sessionmaker) as db:
        session_id = uuid.UUID(sid)
        status = await db.scalar(select(ChatSession.status).where(ChatSession.id == session_id))
        handoffs = (await db.scalars(select(Handoff).where(Handoff.session_id == session_id))).all()
        system_kinds = (
            await db.scalars(
                select(Message.kind).where(
                    Message.session_id == session_id, Message.sender == "system"
                )
            )
        ).all()
        actions = [
            e.action for e in (await db.scalars(select(Event).where(Event.subject_id == sid))).all()
        ]
    assert status == "transferring"  # still mid-transfer: A holds it, B has not answered
    assert [(h.status, h.trigger, h.level) for h in handoffs] == [("not_needed", "in_chat", 4)]
    assert list(system_kinds) == ["safety"]
    assert actions.count("escalation_in_chat") == 1
    assert "escalation_started" not in actions
    for client in (sup_ws, a, b, visitor):
        await client.close()


async def test_clock_started_while_waiting_stands_down_when_the_deadline_finds_a_warm_transfer(
    partnered_server: Callable[..., Any],
) -> None:
    """Escalated while waiting, then accepted and offered on to B before the deadline: A is
    still in the chat when the clock runs out, so it stands down instead of delivering."""
    # Accept and the transfer offer must both land before the clock runs out, even when loaded.
    settings = {**SETTINGS, "handoff_deadline_s": 8.0}
    partner, server = await partnered_server("transferclock", **settings)
    sup_ws = await VolunteerClient.connect(server.ws_url, (await supervisor(server)).token)
    visitor = await VisitorClient.open(server.ws_url, locale="en-GB")
    sid = visitor.session_id
    await visitor.say(URGENT_TEXT, "m1")
    await sup_ws.expect("alert", alert_about(sid, "escalation_started"), within=10.0)
    await visitor.expect("message", is_safety, within=10.0)

    a = await VolunteerClient.connect(server.ws_url, (await volunteer_account(server)).token)
    await a.expect("offer", about(sid), within=10.0)
    await a.send({"type": "accept", "session_id": sid})
    await a.expect("assigned", about(sid))
    b_account = await volunteer_account(server)
    b = await VolunteerClient.connect(server.ws_url, b_account.token)
    await a.send({"type": "transfer", "session_id": sid, "to_volunteer_id": str(b_account.id)})
    await b.expect("offer", about(sid), within=10.0)

    with pytest.raises(TimeoutError):
        await partner.wait_for(1, within=settings["handoff_deadline_s"] + 1.0)
    async with transaction(server.app.state.beacon.sessionmaker) as db:
        session_id = uuid.UUID(sid)
        status = await db.scalar(select(ChatSession.status).where(ChatSession.id == session_id))
        handoffs = (await db.scalars(select(Handoff).where(Handoff.session_id == session_id))).all()
        events = {
            e.action: e
            for e in (
                await db.scalars(
                    select(Event).where(
                        Event.subject_id == sid,
                        Event.action.in_(("transfer_offered", "handoff_cancelled")),
                    )
                )
            ).all()
        }
    assert status == "transferring"
    assert [(h.trigger, h.status) for h in handoffs] == [("auto", "cancelled")]
    assert events["handoff_cancelled"].details["reason"] == "answered"
    # The deadline found the chat mid-transfer (not merely accepted).
    assert events["transfer_offered"].occurred_at < events["handoff_cancelled"].occurred_at
    for client in (sup_ws, a, b, visitor):
        await client.close()


async def test_a_supervisor_holding_the_chat_is_alerted_once(
    partnered_server: Callable[..., Any],
) -> None:
    """Their socket hears the supervisors channel too: the alert naming them comes once."""
    _partner, server = await partnered_server("supholderline", **SETTINGS)
    account = await volunteer_account(server, role="supervisor")
    holder = await VolunteerClient.connect(server.ws_url, account.token)
    visitor = await VisitorClient.open(server.ws_url, locale="en-GB")
    sid = visitor.session_id
    await visitor.say("hi, can someone talk with me", "m1")
    await holder.expect("offer", about(sid), within=10.0)
    await holder.send({"type": "accept", "session_id": sid})
    await holder.expect("assigned", about(sid))

    await visitor.say(URGENT_TEXT, "m2")
    alert = await holder.expect("alert", _in_chat_alert(sid), within=10.0)
    assert alert["volunteer_ids"] == [str(account.id)]
    await visitor.expect("message", is_safety, within=10.0)
    again = [f for f in await holder.drain(1.0) if f.get("type") == "alert"]
    assert not [f for f in again if _in_chat_alert(sid)(f)]
    for client in (holder, visitor):
        await client.close()
