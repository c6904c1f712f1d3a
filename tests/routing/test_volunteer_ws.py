"""``WS /v1/volunteer`` on a real uvicorn: auth, bad input, rights, audited replays, resume,
release/transfer, and what happens when a volunteer disconnects."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.audit.models import Event
from app.chat.committer import NewMessage
from app.chat.models import ChatSession
from app.core.db import transaction
from app.routing.models import Assignment, Volunteer
from tests.routing.wsclient import VolunteerClient, about


async def _drain_until_closed(ws: Any) -> None:
    for _ in range(10):
        await asyncio.wait_for(ws.recv(), timeout=5)


async def _closed_with(ws: Any) -> int | None:
    with pytest.raises(ConnectionClosed):
        await _drain_until_closed(ws)
    code: int | None = ws.close_code
    return code


async def test_auth_failures_close_1008(world_factory: Callable[..., Any]) -> None:
    world = await world_factory(hello_timeout_s=0.5)
    url = f"{world.server.ws_url}/v1/volunteer"
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": "bv_wrong"}))
        error = json.loads(await ws.recv())
        assert error["type"] == "error"
        assert error["code"] == "unauthorized"
        assert await _closed_with(ws) == 1008
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["code"] == "unauthorized"
        assert await _closed_with(ws) == 1008
    async with connect(url) as ws:  # says nothing at all
        assert json.loads(await ws.recv())["code"] == "auth_timeout"
        assert await _closed_with(ws) == 1008


async def test_binary_frame_before_auth_is_refused_with_1003(
    world_factory: Callable[..., Any],
) -> None:
    # Was: the handler returned without closing, so the client saw 1006 and no reason.
    world = await world_factory()
    async with connect(f"{world.server.ws_url}/v1/volunteer") as ws:
        await ws.send(b"\x00\x01 not json")
        error = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        assert error["type"] == "error"
        assert error["code"] == "binary_not_supported"
        assert await _closed_with(ws) == 1003


async def test_bad_frames_get_error_frames_and_keep_the_socket(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory()
    account = await world.volunteer()
    client = await VolunteerClient.connect(world.server.ws_url, account.token)
    assert client.ready["role"] == "volunteer"
    cases = [
        ("{not json", "invalid_json"),
        (json.dumps({"type": "teleport"}), "unknown_frame_type"),
        (json.dumps([1, 2]), "invalid_frame"),
        (json.dumps({"type": "accept", "session_id": "nope"}), "invalid_frame"),
        (json.dumps({"type": "close", "session_id": str(uuid.uuid4())}), "invalid_frame"),
        (json.dumps({"type": "auth", "token": "again"}), "unexpected_frame"),
        (json.dumps({"type": "accept", "session_id": str(uuid.uuid4())}), "no_offer"),
        (
            json.dumps(
                {
                    "type": "message",
                    "session_id": str(uuid.uuid4()),
                    "client_msg_id": "m1",
                    "text": "x" * 5000,
                }
            ),
            "text_too_large",
        ),
    ]
    for raw, code in cases:
        await client.ws.send(raw)
        error = await client.expect("error")
        assert error["code"] == code, raw
    await client.send({"type": "ping"})
    await client.expect("pong")
    await client.ws.send(b"\x00\x01")
    assert (await client.expect("error"))["code"] == "binary_not_supported"
    assert await _closed_with(client.ws) == 1003


async def test_volunteer_cannot_touch_a_session_that_is_not_theirs(
    world_factory: Callable[..., Any],
) -> None:
    # Not a test of offer expiry: a longer offer keeps a slow first triage (cold caches, a
    # loaded machine) from expiring the offer before the holder accepts it.
    world = await world_factory(offer_timeout_s=10.0)
    holder_account = await world.volunteer(capacity=1)
    stranger_account = await world.volunteer(capacity=1)
    holder = await VolunteerClient.connect(world.server.ws_url, holder_account.token)
    session_id = await world.session(urgency=3)
    sid = str(session_id)
    await world.state.committer.submit(
        NewMessage(session_id=session_id, sender="visitor", text="hello", client_msg_id="v1")
    )
    await holder.expect("offer", lambda f: f["session_id"] == sid)
    await holder.send({"type": "accept", "session_id": sid})
    await holder.expect("assigned", lambda f: f["session_id"] == sid)
    # Accepting replays the history: an audited read.
    replayed = await holder.expect("message", lambda f: f["session_id"] == sid)
    assert replayed["text"] == "hello"

    stranger = await VolunteerClient.connect(world.server.ws_url, stranger_account.token)
    attempts: list[dict[str, Any]] = [
        {"type": "message", "session_id": sid, "client_msg_id": "s1", "text": "hi"},
        {"type": "close", "session_id": sid, "disposition": "other", "risk_level": 0},
        {"type": "release", "session_id": sid},
        {"type": "transfer", "session_id": sid},
        {"type": "sync", "session_id": sid, "last_seq": 0},
        {"type": "decline", "session_id": sid},
    ]
    for frame in attempts:
        await stranger.send(frame)
        error = await stranger.expect("error")
        assert error["code"] in ("not_assigned", "no_offer"), frame
        assert error["session_id"] == sid
    assert not [f for f in await stranger.drain(0.2) if f.get("type") == "message"]

    async with transaction(world.state.sessionmaker) as db:
        status = await db.scalar(select(ChatSession.status).where(ChatSession.id == session_id))
        assert status == "active"
        reads = (
            await db.execute(
                select(Event.actor_id, func.count())
                .where(Event.subject_id == sid, Event.action == "transcript_read")
                .group_by(Event.actor_id)
            )
        ).all()
    assert dict(reads) == {str(holder_account.id): 1}
    await holder.close()
    await stranger.close()


async def test_reconnect_resumes_from_last_seq_without_duplicates(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory(volunteer_grace_s=30.0)
    account = await world.volunteer()
    client = await VolunteerClient.connect(world.server.ws_url, account.token)
    session_id = await world.session(urgency=2)
    sid = str(session_id)
    await client.expect("offer")
    await client.send({"type": "accept", "session_id": sid})
    await client.expect("assigned")
    for i in range(3):
        await world.state.committer.submit(
            NewMessage(session_id=session_id, sender="visitor", text=f"m{i}", client_msg_id=f"c{i}")
        )
    seqs = [(await client.expect("message"))["seq"] for _ in range(3)]
    assert seqs == [1, 2, 3]
    await client.close()

    # While away (inside the grace period) two more messages arrive.
    for i in range(3, 5):
        await world.state.committer.submit(
            NewMessage(session_id=session_id, sender="visitor", text=f"m{i}", client_msg_id=f"c{i}")
        )
    again = await VolunteerClient.connect(world.server.ws_url, account.token, last_seq={sid: 2})
    assigned = await again.expect("assigned")
    assert assigned["session_id"] == sid
    assert assigned["last_seq"] == 5
    replay = [(await again.expect("message"))["seq"] for _ in range(3)]
    assert replay == [3, 4, 5]
    # A message sent twice (same client_msg_id) is stored and acked once, same seq.
    frame = {"type": "message", "session_id": sid, "client_msg_id": "r1", "text": "here"}
    await again.send(frame)
    first = await again.expect("ack")
    await again.send(frame)
    second = await again.expect("ack")
    assert first["seq"] == second["seq"] == 6
    frames = await again.drain(0.3)
    echoed = [f["seq"] for f in again.seen if f.get("type") == "message"]
    assert echoed == sorted(set(echoed))  # nothing delivered twice on this connection
    assert [f for f in frames if f.get("type") == "message" and f["seq"] < 6] == []
    await again.close()


async def test_disconnect_returns_chats_to_the_queue_after_grace(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory(volunteer_grace_s=0.5)
    leaving_account = await world.volunteer(capacity=1)
    leaving = await VolunteerClient.connect(world.server.ws_url, leaving_account.token)
    session_id = await world.session(urgency=4, waited_s=40)
    sid = str(session_id)
    await leaving.expect("offer")
    await leaving.send({"type": "accept", "session_id": sid})
    await leaving.expect("assigned")
    await leaving.close()

    # After the grace the session is waiting again, urgency and original wait kept, and the
    # next volunteer is offered it.
    other_account = await world.volunteer(capacity=1)
    other = await VolunteerClient.connect(world.server.ws_url, other_account.token)
    offer = await other.expect("offer", lambda f: f["session_id"] == sid, within=10)
    assert offer["urgency"] == "imminent"
    assert offer["waited_s"] >= 40
    async with transaction(world.state.sessionmaker) as db:
        statuses = (
            await db.scalars(
                select(Assignment.status)
                .where(Assignment.session_id == session_id)
                .order_by(Assignment.id)
            )
        ).all()
    assert statuses[0] == "requeued"
    await other.close()


async def test_warm_transfer_and_release(world_factory: Callable[..., Any]) -> None:
    world = await world_factory()
    a_account = await world.volunteer(capacity=1)
    sup_account = await world.volunteer(capacity=1, role="supervisor")
    a = await VolunteerClient.connect(world.server.ws_url, a_account.token)
    session_id = await world.session(urgency=3)
    sid = str(session_id)
    await a.expect("offer")
    await a.send({"type": "accept", "session_id": sid})
    await a.expect("assigned")
    supervisor = await VolunteerClient.connect(world.server.ws_url, sup_account.token)
    assert supervisor.ready["role"] == "supervisor"
    await a.send({"type": "transfer", "session_id": sid, "to_supervisor": True})
    offer = await supervisor.expect("offer", lambda f: f["session_id"] == sid)
    assert offer["kind"] == "transfer"
    await supervisor.send({"type": "accept", "session_id": sid})
    await supervisor.expect("assigned", lambda f: f["session_id"] == sid)
    await a.expect("session", lambda f: f["session_id"] == sid and f["status"] == "transferred")
    # The supervisor sends it back to the queue (cold): it is offered to A again, who is free.
    await supervisor.send({"type": "release", "session_id": sid})
    again = await a.expect("offer", lambda f: f["session_id"] == sid, within=10.0)
    assert again["urgency"] == "high"
    await a.close()
    await supervisor.close()


async def test_socket_keeps_hearing_offers_after_a_chat_ends_before_its_replay(
    world_factory: Callable[..., Any],
) -> None:
    """accept + close sent back to back: the replay that follows `assigned` finds the chat
    already over. The socket must shrug that off and still get the next offers."""
    world = await world_factory()
    account = await world.volunteer(capacity=1)
    client = await VolunteerClient.connect(world.server.ws_url, account.token)
    for round_ in range(40):
        session_id = str(await world.session(urgency=round_ % 5))
        await client.expect("offer", about(session_id))
        await client.send({"type": "accept", "session_id": session_id})
        await client.send(
            {"type": "close", "session_id": session_id, "disposition": "other", "risk_level": 0}
        )
    errors = [f for f in await client.drain(0.3) if f.get("type") == "error"]
    assert errors == []
    await client.close()


async def test_ready_is_the_first_frame_even_while_alerts_flow(
    world_factory: Callable[..., Any],
) -> None:
    """A supervisor's socket hears the supervisors channel from before it reads its state (so
    nothing in between is lost), but nothing heard may overtake ``ready``. Found on a loaded
    machine: an escalation alert arrived first and the client's handshake failed."""
    world = await world_factory()
    account = await world.volunteer(role="supervisor", capacity=0)
    stop = asyncio.Event()

    async def alerts() -> None:
        alert = {
            "kind": "escalation",
            "session_id": str(uuid.uuid4()),
            "urgency": "imminent",
            "urgency_value": 4,
            "reason": "escalation_started",
        }
        while not stop.is_set():
            await world.state.bus.publish("supervisors", alert)
            await asyncio.sleep(0)

    flowing = asyncio.create_task(alerts())
    try:
        for _ in range(5):
            ws = await connect(f"{world.server.ws_url}/v1/volunteer")
            await ws.send(json.dumps({"type": "auth", "token": account.token}))
            first = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            assert first["type"] == "ready", first
            # What was heard meanwhile still comes, after it.
            later = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            assert later["type"] in ("alert", "queue"), later
            await ws.close()
    finally:
        stop.set()
        await flowing


async def test_a_second_socket_closing_keeps_its_owner_online_and_their_offer_open(
    world_factory: Callable[..., Any],
) -> None:
    """Two tabs (or a phone beside the laptop): closing one must not mark the volunteer offline,
    which would withdraw their pending offers at once; closing the last one does."""
    world = await world_factory()
    account = await world.volunteer(capacity=2)
    first = await VolunteerClient.connect(world.server.ws_url, account.token)
    second = await VolunteerClient.connect(world.server.ws_url, account.token)
    session_id = await world.session(urgency=2)
    sid = str(session_id)
    await first.expect("offer", about(sid))
    await second.expect("offer", about(sid))
    await second.close()
    await asyncio.sleep(0.5)  # many routing passes (every 0.05 s here), each sweeping presence

    async def presence_and_offer() -> tuple[str | None, list[str]]:
        async with transaction(world.state.sessionmaker) as db:
            presence = await db.scalar(select(Volunteer.presence).where(Volunteer.id == account.id))
            statuses = (
                await db.scalars(
                    select(Assignment.status).where(Assignment.session_id == session_id)
                )
            ).all()
        return presence, list(statuses)

    assert await presence_and_offer() == ("online", ["offered"])
    await first.send({"type": "accept", "session_id": sid})
    await first.expect("assigned", about(sid))
    await first.close()
    for _ in range(100):
        presence, _ = await presence_and_offer()
        if presence == "offline":
            break
        await asyncio.sleep(0.05)
    assert presence == "offline"
