"""Muting an abusive visitor end to end (issue 14): real uvicorn, real `websockets` clients on
both sockets, the real triage engine, Postgres. While muted the visitor's calm messages reach
the volunteer with their text withheld, but they are still stored, acked and triaged; a rise to
imminent is shown in full and the visitor still gets the safety message; a high+ session needs
a second supervisor; every step is audited."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from app.chat.models import Message
from app.core.db import transaction
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

CALM = "you are useless and so is this chat"
IMMINENT = "I took 30 pills"


async def _stored(world: Any, session_id: str, seq: int) -> Message:
    async with transaction(world.state.sessionmaker) as db:
        row = await db.scalar(
            select(Message).where(Message.session_id == uuid.UUID(session_id), Message.seq == seq)
        )
    assert row is not None
    return row


async def test_mute_shields_the_volunteer_and_hides_no_rise(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory()
    visitor, volunteer = await world.held_chat(capacity=6)
    sid = visitor.session_id
    s1 = await world.volunteer(role="supervisor", capacity=0, name="S1")
    s2 = await world.volunteer(role="supervisor", capacity=0, name="S2")
    s2_ws = await VolunteerClient.connect(world.server.ws_url, s2.token)
    base = world.server.base_url
    h1 = {"Authorization": f"Bearer {s1.token}"}
    async with httpx.AsyncClient(base_url=base, headers=h1) as http:
        made = await http.post(
            f"/v1/dashboard/sessions/{sid}/mute", json={"duration_s": 600, "reason": "abuse"}
        )
        assert made.status_code == 200, made.text
        mute = made.json()
        assert (mute["status"], mute["needs_confirmation"]) == ("active", False)
        assert (await volunteer.expect("session", about(sid, muted=True)))["muted_until"]

        # Muted: stored, acked, triaged; the volunteer gets the line without its text.
        ack = await visitor.say(CALM, "v-1")
        shielded = await volunteer.expect("message", about(sid, seq=ack["seq"]))
        assert shielded["text"] is None
        assert shielded["muted"] is True
        assert shielded["level"] is not None
        row = await _stored(world, sid, ack["seq"])
        assert row.text == CALM
        assert row.level is not None
        assert row.level < 3
        # A supervisor watching sees the text.
        await s2_ws.send({"type": "observe", "session_id": sid, "last_seq": ack["seq"] - 1})
        watched = await s2_ws.expect("message", about(sid, seq=ack["seq"]))
        assert watched["text"] == CALM
        assert "muted" not in watched

        # A rise to imminent is never hidden; escalation still talks to the visitor.
        ack = await visitor.say(IMMINENT, "v-2")
        urgent = await volunteer.expect("message", about(sid, seq=ack["seq"]))
        assert urgent["text"] == IMMINENT
        assert "muted" not in urgent
        assert urgent["level"] == 4
        await volunteer.expect("session", about(sid, urgency="imminent"))
        safety = await visitor.expect("message", lambda f: f.get("kind") == "safety", within=15)
        assert safety["sender"] == "system"
        # Now high+: a mute only one supervisor made no longer applies.
        ack = await visitor.say("ok", "v-3")
        assert (await volunteer.expect("message", about(sid, seq=ack["seq"])))["text"] == "ok"

        # Lifted: the volunteer is told; a second lift finds nothing.
        lifted = await http.delete(f"/v1/dashboard/sessions/{sid}/mute")
        assert lifted.json()["status"] == "lifted"
        await volunteer.expect("session", about(sid, muted=False))
        again = await http.delete(f"/v1/dashboard/sessions/{sid}/mute")
        assert (again.status_code, again.json()["error"]) == (404, "mute_not_found")

        # At high a mute is only a request until a second supervisor confirms it.
        visitor2 = await VisitorClient.open(world.server.ws_url)
        await visitor2.say("hello", "w-0")
        sid2 = visitor2.session_id
        await world.triaged(sid2, 3)
        # The router offers it (capacity to spare); take it.
        await volunteer.expect("offer", about(sid2))
        await volunteer.send({"type": "accept", "session_id": sid2})
        await volunteer.expect("assigned", about(sid2))
        asked = await http.post(
            f"/v1/dashboard/sessions/{sid2}/mute", json={"duration_s": 300, "reason": "abuse"}
        )
        request = asked.json()
        assert (request["status"], request["needs_confirmation"]) == ("requested", True)
        alert = await s2_ws.expect("alert", about(sid2, reason="mute_requested"))
        assert alert["mute_id"] == request["mute_id"]
        ack = await visitor2.say(CALM, "w-1")
        assert (await volunteer.expect("message", about(sid2, seq=ack["seq"])))["text"] == CALM
        own = await http.post(f"/v1/dashboard/mutes/{request['mute_id']}/confirm")
        assert (own.status_code, own.json()["error"]) == (403, "second_supervisor_required")
    await s2_ws.send({"type": "confirm_mute", "mute_id": request["mute_id"]})
    confirmed = await s2_ws.expect("mute")
    assert (confirmed["status"], confirmed["confirmed_by"]) == ("active", str(s2.id))
    await volunteer.expect("session", about(sid2, muted=True))
    ack = await visitor2.say(CALM, "w-2")
    assert (await volunteer.expect("message", about(sid2, seq=ack["seq"])))["text"] is None
    ack = await visitor2.say(IMMINENT, "w-3")
    assert (await volunteer.expect("message", about(sid2, seq=ack["seq"])))["text"] == IMMINENT
    await s2_ws.send({"type": "confirm_mute", "mute_id": request["mute_id"]})
    assert (await s2_ws.expect("error"))["code"] == "invalid_transition"
    second = [(e.action, e.actor_id) for e in await world.audit(sid2)]
    assert ("mute_requested", str(s1.id)) in second
    assert ("mute_confirmed", str(s2.id)) in second

    actions = [(e.action, e.actor_id) for e in await world.audit(sid)]
    assert ("session_muted", str(s1.id)) in actions
    assert ("mute_lifted", str(s1.id)) in actions
    events = await world.audit(sid) + await world.audit(sid2)
    assert all(CALM not in str(e.details) and "abuse" not in str(e.details) for e in events)
    for client in (visitor, visitor2, volunteer, s2_ws):
        await client.close()


async def test_mute_refusals(world_factory: Callable[..., Any]) -> None:
    world = await world_factory()
    visitor, volunteer = await world.held_chat(capacity=6)
    sid = visitor.session_id
    sup = await world.volunteer(role="supervisor", capacity=0, name="S")
    base = world.server.base_url
    url = f"/v1/dashboard/sessions/{sid}/mute"
    headers = {"Authorization": f"Bearer {sup.token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        for body in (
            {"duration_s": 5, "reason": "x"},
            {"duration_s": 600, "reason": " "},
            {"duration_s": 600.5, "reason": "x"},
            {"duration_s": 10**9, "reason": "x"},
            {"duration_s": 600},
        ):
            bad = await http.post(url, json=body)
            assert (bad.status_code, bad.json()["error"]) == (422, "validation_error"), body
        assert (await http.post(url, json={"duration_s": 60, "reason": "x"})).status_code == 200
        twice = await http.post(url, json={"duration_s": 60, "reason": "x"})
        assert (twice.status_code, twice.json()["error"]) == (409, "already_muted")
        unknown = await http.post(f"/v1/dashboard/mutes/{uuid.uuid4()}/confirm")
        assert (unknown.status_code, unknown.json()["error"]) == (404, "mute_not_found")
        gone = await http.post(
            f"/v1/dashboard/sessions/{uuid.uuid4()}/mute", json={"duration_s": 60, "reason": "x"}
        )
        assert (gone.status_code, gone.json()["error"]) == (404, "not_found")
    vol_headers = {"Authorization": f"Bearer {(await world.volunteer(name='W')).token}"}
    async with httpx.AsyncClient(base_url=base, headers=vol_headers) as http:
        denied = await http.post(url, json={"duration_s": 60, "reason": "x"})
        assert (denied.status_code, denied.json()["error"]) == (403, "supervisors_only")
    await volunteer.send({"type": "mute", "session_id": sid, "duration_s": 60, "reason": "x"})
    assert (await volunteer.expect("error", about(sid)))["code"] == "supervisors_only"
    await volunteer.send({"type": "mute", "session_id": sid, "duration_s": 1, "reason": "x"})
    assert (await volunteer.expect("error"))["code"] == "invalid_frame"
    for client in (visitor, volunteer):
        await client.close()
