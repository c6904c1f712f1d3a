"""End to end on a real uvicorn + real `websockets` clients + Postgres: 3 volunteers with
capacity 2, 10 visitors of mixed urgency arriving over time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from app.chat.models import Message
from app.core.db import transaction, utcnow
from app.routing.dispatch import priority_of, waiting_sessions
from app.routing.models import Assignment, Volunteer
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

# Arrival order; the imminent person arrives last but must be offered first.
URGENCIES = [0, 1, 2, 0, 3, 1, 2, 0, 1, 4]


def _sid(frame: dict[str, Any]) -> str:
    value = frame["session_id"]
    assert isinstance(value, str)
    return value


async def test_three_volunteers_ten_visitors(world_factory: Callable[..., Any]) -> None:
    # Every chat one slot: this story is about order, declines and timeouts; weighted slots have
    # their own end-to-end test (tests/routing/test_slot_weights.py).
    world = await world_factory(offer_timeout_s=1.0, high_urgency_slots=1)
    state = world.state
    sessions: list[uuid.UUID] = []
    visitors: dict[str, VisitorClient] = {}
    for i, urgency in enumerate(URGENCIES):
        visitor = await VisitorClient.open(world.server.ws_url)
        await visitor.say("hello, is anyone there?", f"hello-{i}")
        if urgency:
            await world.triaged(visitor.session_id, urgency)
        sessions.append(uuid.UUID(visitor.session_id))
        visitors[visitor.session_id] = visitor
        await asyncio.sleep(0.02)  # arriving over time: distinct waits

    # The queue's own order, computed with the same rule the router uses.
    async with transaction(state.sessionmaker) as db:
        queue = await waiting_sessions(db, state.settings)
    now = utcnow()
    ours = {str(s) for s in sessions}
    expected = [str(w.id) for w in queue if str(w.id) in ours]
    scores = [priority_of(w, now, state.settings) for w in queue if str(w.id) in ours]
    assert scores == sorted(scores, reverse=True)
    assert expected[0] == str(sessions[-1])  # the imminent late-comer heads the queue
    assert expected[1] == str(sessions[4])  # then the high one

    a_account = await world.volunteer(capacity=2, name="A")
    b_account = await world.volunteer(capacity=2, name="B")
    c_account = await world.volunteer(capacity=2, name="C")

    # A comes online: the two most urgent people are offered, most urgent first.
    a = await VolunteerClient.connect(world.server.ws_url, a_account.token)
    first = await a.expect("offer")
    second = await a.expect("offer")
    assert [_sid(first), _sid(second)] == expected[:2]
    assert first["urgency"] == "imminent"
    assert first["expires_in_s"] <= 1.0

    # Accept the imminent one; decline the high one -> A is offered the next in line instead.
    await a.send({"type": "accept", "session_id": expected[0]})
    assert _sid(await a.expect("assigned")) == expected[0]
    await a.send({"type": "decline", "session_id": expected[1]})
    third = await a.expect("offer")
    assert _sid(third) == expected[2]

    # A lets that one time out -> it is withdrawn, and A is offered the next one again.
    await a.expect("session", lambda f: f.get("status") == "offer_expired", within=10.0)
    fourth = await a.expect("offer", within=10.0)
    assert _sid(fourth) == expected[3]
    await a.send({"type": "accept", "session_id": expected[3]})
    await a.expect("assigned", lambda f: _sid(f) == expected[3])

    # B comes online: gets the two A refused (still the most urgent waiting), in order.
    b = await VolunteerClient.connect(world.server.ws_url, b_account.token)
    b_offers = [await b.expect("offer"), await b.expect("offer")]
    assert [_sid(f) for f in b_offers] == expected[1:3]
    for sid in [_sid(f) for f in b_offers]:
        await b.send({"type": "accept", "session_id": sid})
        await b.expect("assigned", about(sid))

    # C comes online: the next two.
    c = await VolunteerClient.connect(world.server.ws_url, c_account.token)
    c_offers = [await c.expect("offer"), await c.expect("offer")]
    assert [_sid(f) for f in c_offers] == expected[4:6]
    for sid in [_sid(f) for f in c_offers]:
        await c.send({"type": "accept", "session_id": sid})
        await c.expect("assigned", about(sid))

    # Everyone is full: nobody gets a third offer.
    for client in (a, b, c):
        extra = [f for f in await client.drain(0.3) if f.get("type") == "offer"]
        assert extra == []

    # Visitors were told: the imminent person saw "offered", then "active".
    await visitors[expected[0]].expect("status", lambda f: f["status"] == "offered")
    await visitors[expected[0]].expect("status", lambda f: f["status"] == "active")

    # Chats flow both ways, for every held session, over the real visitor socket.
    holders = {expected[0]: a, expected[3]: a, expected[1]: b, expected[2]: b}
    holders.update({expected[4]: c, expected[5]: c})
    for session_id, client in holders.items():
        visitor_socket = visitors[session_id]
        visitor_ack = await visitor_socket.say("thank you for answering", f"v-{session_id[:8]}")
        got = await client.expect(
            "message",
            about(session_id, text="thank you for answering"),
        )
        assert got["seq"] == visitor_ack["seq"]
        assert got["sender"] == "visitor"
        await client.send(
            {
                "type": "message",
                "session_id": session_id,
                "client_msg_id": f"reply-{session_id[:8]}",
                "text": "I'm here with you.",
            }
        )
        ack = await client.expect("ack", about(session_id))
        assert ack["seq"] == visitor_ack["seq"] + 1
        heard = await visitor_socket.expect("message", lambda f: f["sender"] == "volunteer")
        assert heard["text"] == "I'm here with you."
        assert heard["seq"] == ack["seq"]
        async with transaction(state.sessionmaker) as db:
            stored = await db.scalar(
                select(Message).where(
                    Message.session_id == uuid.UUID(session_id), Message.seq == ack["seq"]
                )
            )
        assert stored is not None
        assert stored.sender == "volunteer"
        assert stored.text == "I'm here with you."

    # A wraps up the imminent chat -> a slot frees -> A is offered the next waiting person.
    await a.send(
        {
            "type": "close",
            "session_id": expected[0],
            "disposition": "emergency_services",
            "risk_level": "high",
        }
    )
    await a.expect("session", lambda f: _sid(f) == expected[0] and f.get("status") == "closed")
    nxt = await a.expect("offer", within=10.0)
    assert _sid(nxt) == expected[6]

    # Invariants, from the database: no session ever had two holders, nobody over capacity.
    async with transaction(state.sessionmaker) as db:
        accepted = (
            await db.execute(
                select(Assignment.session_id, func.count())
                .where(
                    Assignment.session_id.in_([uuid.UUID(s) for s in expected]),
                    Assignment.responded_at.is_not(None),
                    Assignment.status.in_(("active", "closed")),
                )
                .group_by(Assignment.session_id)
            )
        ).all()
        assert accepted
        assert all(count == 1 for _, count in accepted)
        for account in (a_account, b_account, c_account):
            volunteer = await db.get(Volunteer, account.id)
            assert volunteer is not None
            open_rows = await db.scalar(
                select(func.coalesce(func.sum(Assignment.slots), 0))
                .select_from(Assignment)
                .where(
                    Assignment.volunteer_id == account.id,
                    Assignment.status.in_(("offered", "active")),
                )
            )
            assert volunteer.load == open_rows
            assert volunteer.load <= volunteer.capacity
    # Nobody was ever offered more than capacity at once, as seen on the wire.
    for client in (a, b, c):
        assert _max_open(client.seen) <= 2
    for client in (a, b, c):
        await client.close()
    for visitor in visitors.values():
        await visitor.close()


def _max_open(frames: list[dict[str, Any]]) -> int:
    """Open offers + held chats over time, from what the socket was told."""
    open_ids: set[str] = set()
    peak = 0
    for frame in frames:
        kind = frame.get("type")
        if kind in ("offer", "assigned"):
            open_ids.add(_sid(frame))
        elif kind == "session" and frame.get("status") in (
            "offer_declined",
            "offer_expired",
            "offer_withdrawn",
            "closed",
            "released",
            "requeued",
            "transferred",
        ):
            open_ids.discard(_sid(frame))
        peak = max(peak, len(open_ids))
    return peak


async def test_urgency_rise_reorders_at_once_and_alerts_supervisors(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory()
    supervisor_account = await world.volunteer(role="supervisor", capacity=0)
    volunteer_account = await world.volunteer(capacity=1)
    supervisor = await VolunteerClient.connect(world.server.ws_url, supervisor_account.token)
    volunteer = await VolunteerClient.connect(world.server.ws_url, volunteer_account.token)
    busy = await world.session(urgency=1)
    await volunteer.expect("offer", lambda f: f["session_id"] == str(busy))
    await volunteer.send({"type": "accept", "session_id": str(busy)})
    await volunteer.expect("assigned")

    earlier = await world.session(urgency=1, waited_s=60)
    later = await world.session(urgency=0)
    await world.triaged(later, 4)
    alert = await supervisor.expect("alert", lambda f: f["session_id"] == str(later))
    assert alert["urgency"] == "imminent"
    assert alert["reason"] == "urgency_raised"

    await volunteer.send(
        {"type": "close", "session_id": str(busy), "disposition": "supported", "risk_level": 0}
    )
    offer = await volunteer.expect("offer", within=10.0)
    assert offer["session_id"] == str(later)  # not the one that had waited longer
    assert offer["urgency"] == "imminent"
    assert str(earlier) != offer["session_id"]
    await volunteer.close()
    await supervisor.close()
