"""The visitor socket end to end: real uvicorn, real ``websockets`` client, real Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat.committer import NewMessage
from app.chat.models import ChatSession
from app.core.db import utcnow
from tests.chat.conftest import Visitor, end_live_sessions, events_for, stored_messages
from tests.conftest import LiveServer

VisitorFactory = Callable[..., Any]
# Urgent under any version of the engine (SPEC §2: an attempt just made is `imminent`).
URGENT = "I want to kill myself. I took 30 pills an hour ago"


async def test_hello_opens_a_waiting_session_with_a_strong_resume_token(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    v = await visitor_factory()
    session = await v.hello(locale="en-GB", channel="web")
    assert session["status"] == "waiting"
    assert session["last_seq"] == 0
    assert len(session["resume_token"]) >= 43  # token_urlsafe(32): 256 bits
    status = await v.recv_until("status")
    assert status["status"] == "waiting"
    # In the queue only once the visitor speaks: a hello alone is not a request for help.
    assert (status["queue_position"], status["estimated_wait_s"]) == (None, None)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(ChatSession).where(ChatSession.id == uuid.UUID(session["session_id"]))
            )
        ).one()
    assert row.locale == "en-GB"
    assert row.channel == "web"
    assert row.visitor_connected is True
    # Only the hash is stored.
    assert session["resume_token"] not in row.resume_token_hash
    assert len(row.resume_token_hash) == 64
    assert row.visitor_spoke_at is None
    events = await events_for(engine, session["session_id"])
    assert [e.action for e in events] == ["session_opened"]

    await v.say("hi", "first")
    status = await v.told_position()
    assert isinstance(status["queue_position"], int)
    assert status["queue_position"] >= 1
    assert status["estimated_wait_s"] is None  # nobody has been served yet: we do not guess
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(ChatSession).where(ChatSession.id == uuid.UUID(session["session_id"]))
            )
        ).one()
    # The wait starts with the first message, not the hello.
    assert row.visitor_spoke_at is not None
    assert row.waiting_since == row.visitor_spoke_at
    actions = [e.action for e in await events_for(engine, session["session_id"])]
    assert actions[0] == "session_opened"
    assert actions.count("visitor_spoke") == 1


async def test_message_is_acked_with_gap_free_seq_and_stored_with_triage(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    v = await visitor_factory()
    session = await v.hello()
    acks = [await v.say(f"message {i}", f"c{i}") for i in range(5)]
    assert [a["seq"] for a in acks] == [1, 2, 3, 4, 5]
    rows = await stored_messages(engine, session["session_id"])
    assert [(r.seq, r.sender, r.client_msg_id, r.text) for r in rows] == [
        (i + 1, "visitor", f"c{i}", f"message {i}") for i in range(5)
    ]
    assert all(r.level is not None and r.model_version for r in rows)


async def test_resend_is_acked_with_original_seq_and_stored_once(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    v = await visitor_factory()
    session = await v.hello()
    first = await v.say("are you there?", "same-id")
    await v.say("second", "other-id")
    again = await v.say("are you there?", "same-id")
    assert first["seq"] == again["seq"] == 1
    # ... and across a reconnect.
    v2 = await visitor_factory()
    await v2.hello(resume_token=session["resume_token"], last_seq=2)
    again2 = await v2.say("are you there?", "same-id")
    assert again2["seq"] == 1
    rows = await stored_messages(engine, session["session_id"])
    assert [r.client_msg_id for r in rows] == ["same-id", "other-id"]


async def test_concurrent_duplicate_sends_store_once(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    v1 = await visitor_factory()
    session = await v1.hello()
    v2 = await visitor_factory()
    await v2.hello(resume_token=session["resume_token"], last_seq=0)
    await asyncio.gather(
        *(v.send({"type": "message", "client_msg_id": "dup", "text": "hi"}) for v in (v1, v2))
    )
    acks = [await v.recv_until("ack") for v in (v1, v2)]
    assert acks[0]["seq"] == acks[1]["seq"] == 1
    rows = await stored_messages(engine, session["session_id"])
    assert len(rows) == 1


async def test_resume_replays_everything_after_last_seq_in_order(
    visitor_factory: VisitorFactory, chat_server: LiveServer
) -> None:
    v = await visitor_factory()
    session = await v.hello()
    for i in range(4):
        await v.say(f"m{i}", f"id{i}")
    committer = chat_server.app.state.beacon.committer
    await committer.submit(
        NewMessage(
            session_id=uuid.UUID(session["session_id"]),
            sender="system",
            text="A volunteer will be with you soon.",
            kind="safety",
        )
    )
    live = await v.recv_until("message")
    assert live["seq"] == 5
    assert live["sender"] == "system"
    assert live["kind"] == "safety"
    await v.close()

    r = await visitor_factory()
    resumed = await r.hello(resume_token=session["resume_token"], last_seq=2)
    assert resumed["session_id"] == session["session_id"]
    assert resumed["last_seq"] == 5
    replay = [await r.recv_until("message") for _ in range(3)]
    assert [f["seq"] for f in replay] == [3, 4, 5]
    assert [f["sender"] for f in replay] == ["visitor", "visitor", "system"]
    assert [f.get("client_msg_id") for f in replay] == ["id2", "id3", None]
    assert replay[0]["text"] == "m2"
    assert replay[0]["sent_at"].endswith("+00:00")
    await r.recv_until("status")
    # ... then live: the next message continues the sequence without repeating anything.
    ack = await r.say("back again", "id5")
    assert ack["seq"] == 6
    seqs = [f["seq"] for f in r.frames if f["type"] in ("message", "ack")]
    assert seqs == sorted(set(seqs))


async def test_volunteer_message_before_own_ack_is_delivered_first(
    visitor_factory: VisitorFactory, chat_server: LiveServer
) -> None:
    """Frames on one connection never skip a seq: a message committed by someone else just
    before the visitor's own is delivered before the ack."""
    v = await visitor_factory()
    session = await v.hello()
    await v.recv_until("status")
    committer = chat_server.app.state.beacon.committer
    sid = uuid.UUID(session["session_id"])
    for round_ in range(10):
        await asyncio.gather(
            committer.submit(NewMessage(session_id=sid, sender="volunteer", text=f"v{round_}")),
            v.send({"type": "message", "client_msg_id": f"own{round_}", "text": f"o{round_}"}),
        )
        await v.recv_until("ack", client_msg_id=f"own{round_}")

    def seqs() -> list[int]:
        return [f["seq"] for f in v.frames if f["type"] in ("message", "ack")]

    while len(seqs()) < 20:  # the last volunteer messages may still be on their way
        await v.recv()
    with contextlib.suppress(TimeoutError):  # ... and nothing more, a seq twice included
        while True:
            await v.recv(0.2)
    assert seqs() == list(range(1, 21))


async def test_invalid_and_expired_resume_tokens_are_refused_with_1008(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    v = await visitor_factory()
    await v.send({"type": "hello", "resume_token": "not-a-real-token", "last_seq": 0})
    code, seen = await v.closed()
    assert code == 1008
    assert seen[-1] == {
        "type": "error",
        "code": "invalid_resume_token",
        "detail": "unknown or expired resume token",
    }

    ok = await visitor_factory()
    session = await ok.hello()
    await ok.close()
    async with engine.begin() as conn:
        await conn.execute(
            update(ChatSession)
            .where(ChatSession.id == uuid.UUID(session["session_id"]))
            .values(token_expires_at=utcnow() - timedelta(seconds=1))
        )
    late = await visitor_factory()
    await late.send({"type": "hello", "resume_token": session["resume_token"], "last_seq": 0})
    code, seen = await late.closed()
    assert code == 1008
    assert seen[-1]["code"] == "invalid_resume_token"


async def test_last_seq_beyond_the_session_is_reported_not_fatal(
    visitor_factory: VisitorFactory,
) -> None:
    v = await visitor_factory()
    session = await v.hello()
    await v.say("one", "a")
    await v.close()
    r = await visitor_factory()
    await r.hello(resume_token=session["resume_token"], last_seq=99)
    error = await r.recv_until("error")
    assert error["code"] == "invalid_last_seq"
    ack = await r.say("two", "b")
    assert ack["seq"] == 2


async def test_hello_timeout_closes_1008(live_server_factory: Callable[..., Any]) -> None:
    server = await live_server_factory(hello_timeout_s=0.3)
    v = await Visitor.connect(server.ws_url)
    code, seen = await v.closed(wait_s=5)
    assert code == 1008
    assert seen == [{"type": "error", "code": "hello_timeout", "detail": "no hello frame in time"}]


async def test_frame_before_hello_closes_1008(visitor_factory: VisitorFactory) -> None:
    v = await visitor_factory()
    await v.send({"type": "message", "client_msg_id": "x", "text": "hi"})
    code, seen = await v.closed()
    assert code == 1008
    assert seen[-1]["code"] == "hello_required"


async def test_garbage_before_hello_is_answered_and_hello_still_works(
    visitor_factory: VisitorFactory,
) -> None:
    v = await visitor_factory()
    await v.ws.send("{nope")
    assert (await v.recv())["code"] == "invalid_json"
    session = await v.hello()
    assert session["status"] == "waiting"


async def test_bad_frames_get_stable_errors_and_the_connection_survives(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    v = await visitor_factory()
    session = await v.hello()
    await v.recv_until("status")
    cases: list[tuple[str, str]] = [
        ("not json", "invalid_json"),
        ("[1,2]", "invalid_frame"),
        ('{"no":"type"}', "invalid_frame"),
        ('{"type":"dance"}', "unknown_frame_type"),
        ('{"type":"message","client_msg_id":"","text":"x"}', "invalid_frame"),
        ('{"type":"message","client_msg_id":"' + "x" * 65 + '","text":"x"}', "invalid_frame"),
        ('{"type":"message","client_msg_id":"a","text":5}', "invalid_frame"),
        ('{"type":"message","client_msg_id":"a"}', "invalid_frame"),
        ('{"type":"message","client_msg_id":"a","text":"   "}', "invalid_frame"),
        ('{"type":"message","client_msg_id":"a","text":"nul\\u0000"}', "invalid_frame"),
        ('{"type":"hello"}', "invalid_frame"),
    ]
    for raw, code in cases:
        await v.ws.send(raw)
        error = await v.recv_until("error")
        assert error["code"] == code, raw
        assert "x" * 65 not in error["detail"]
    big = "é" * 2049  # 4098 bytes, under the frame limit
    await v.send({"type": "message", "client_msg_id": "big", "text": big})
    error = await v.recv_until("error")
    assert error["code"] == "text_too_large"
    assert error["client_msg_id"] == "big"
    # Exactly at the limit is fine, and the connection is still good for real messages.
    ack = await v.say("a" * 4096, "limit")
    assert ack["seq"] == 1
    await v.send({"type": "ping"})
    assert (await v.recv_until("pong")) == {"type": "pong"}
    rows = await stored_messages(engine, session["session_id"])
    assert [r.client_msg_id for r in rows] == ["limit"]


async def test_binary_frame_closes_1003(visitor_factory: VisitorFactory) -> None:
    v = await visitor_factory()
    await v.hello()
    await v.ws.send(b"\x00\x01binary")
    code, _ = await v.closed()
    assert code == 1003


async def test_invalid_utf8_text_frame_closes_1007(visitor_factory: VisitorFactory) -> None:
    v = await visitor_factory()
    await v.hello()
    await v.ws.send(b'{"type":"ping","x":"\xff\xfe"}', text=True)
    code, _ = await v.closed()
    assert code == 1007


async def test_oversized_frame_closes_1009(visitor_factory: VisitorFactory) -> None:
    v = await visitor_factory()
    await v.hello()
    await v.send({"type": "message", "client_msg_id": "huge", "text": "x" * 20_000})
    code, _ = await v.closed()
    assert code == 1009


async def test_flood_gets_rate_limited_then_closed_1008(
    live_server_factory: Callable[..., Any],
) -> None:
    server = await live_server_factory(
        ws_rate_limit_per_s=2.0, ws_rate_limit_burst=5, ws_flood_disconnect_after=10
    )
    v = await Visitor.connect(server.ws_url)
    await v.hello()
    for _ in range(40):
        await v.send({"type": "ping"})
    code, seen = await v.closed()
    received = v.frames
    assert code == 1008
    assert sum(1 for f in received if f["type"] == "pong") <= 6
    codes = [f.get("code") for f in received if f["type"] == "error"]
    assert "rate_limited" in codes
    assert seen[-1]["code"] == "rate_limited"


async def test_rate_limited_client_recovers_after_slowing_down(
    live_server_factory: Callable[..., Any],
) -> None:
    server = await live_server_factory(
        ws_rate_limit_per_s=2.0, ws_rate_limit_burst=3, ws_flood_disconnect_after=50
    )
    v = await Visitor.connect(server.ws_url)
    await v.hello()
    await v.recv_until("status")
    for _ in range(6):
        await v.send({"type": "ping"})
    answers = [await v.recv() for _ in range(6)]
    # The hello took one token of the burst of 3: two pongs, then four refusals.
    assert [a["type"] for a in answers] == ["pong"] * 2 + ["error"] * 4
    assert {a["code"] for a in answers[2:]} == {"rate_limited"}
    await asyncio.sleep(1.0)  # two tokens back
    await v.send({"type": "ping"})
    await v.recv_until("pong")


async def test_urgency_rises_and_is_audited_never_lowered(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    v = await visitor_factory()
    session = await v.hello()
    await v.say("hi, rough day", "a")
    await v.say(URGENT, "b")
    await v.say("never mind, it's fine", "c")
    sid = uuid.UUID(session["session_id"])
    async with engine.connect() as conn:
        row = (await conn.execute(select(ChatSession).where(ChatSession.id == sid))).one()
    assert row.urgency >= 3
    # An imminent message also brings a system safety message (untriaged): visitors' only.
    stored = [
        m for m in await stored_messages(engine, session["session_id"]) if m.sender == "visitor"
    ]
    # Session urgency is the max over its messages: the retraction did not lower it.
    assert [m.client_msg_id for m in stored] == ["a", "b", "c"]
    assert row.urgency == max(m.level for m in stored) == stored[1].level
    events = await events_for(engine, session["session_id"])
    rises = [e.details for e in events if e.action == "urgency_raised"]
    # Every rise is audited, as a chain from 0 up to the session's urgency, none at seq 3.
    assert rises
    assert rises[0]["from"] == 0
    assert all(a["to"] == b["from"] for a, b in itertools.pairwise(rises))
    assert rises[-1]["to"] == row.urgency
    assert rises[-1]["seq"] == 2
    assert all(r["seq"] in (1, 2) for r in rises)


async def test_volunteer_messages_from_another_instance_arrive_live(
    visitor_factory: VisitorFactory, live_server_factory: Callable[..., Any]
) -> None:
    other = await live_server_factory()
    v = await visitor_factory()
    session = await v.hello()
    await v.recv_until("status")
    await other.app.state.beacon.committer.submit(
        NewMessage(
            session_id=uuid.UUID(session["session_id"]),
            sender="volunteer",
            sender_id="vol-1",
            text="Hi, I'm here with you.",
        )
    )
    frame = await v.recv_until("message")
    assert frame["seq"] == 1
    assert frame["sender"] == "volunteer"
    assert frame["text"] == "Hi, I'm here with you."
    assert "client_msg_id" not in frame


async def test_status_changes_from_elsewhere_reach_the_visitor(
    visitor_factory: VisitorFactory, chat_server: LiveServer
) -> None:
    from app.chat.service import SessionStatus, change_status
    from app.core.db import transaction

    v = await visitor_factory()
    session = await v.hello()
    await v.recv_until("status")
    state = chat_server.app.state.beacon
    async with transaction(state.sessionmaker) as db:
        await change_status(
            db,
            state.bus,
            session_id=uuid.UUID(session["session_id"]),
            to=SessionStatus.active,
            reason="test",
        )
    status = await v.recv_until("status", status="active")
    assert status["queue_position"] is None
    assert status["estimated_wait_s"] is None


async def test_queue_position_follows_urgency(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    await end_live_sessions(engine)
    calm = await visitor_factory()
    await calm.hello()
    await calm.say("hi", "c1")
    assert (await calm.told_position())["queue_position"] == 1
    worried = await visitor_factory()
    await worried.hello()
    await worried.say("hi", "w0")
    assert (await worried.told_position())["queue_position"] == 2
    await worried.say(URGENT, "w1")
    assert (await worried.told_position(1))["status"] == "waiting"
    assert (await calm.told_position(2))["status"] == "waiting"


async def test_close_frame_ends_the_chat(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    v = await visitor_factory()
    session = await v.hello()
    await v.say("thanks, bye", "a")
    await v.send({"type": "close"})
    code, seen = await v.closed()
    assert code == 1000
    assert seen[-1]["type"] == "status"
    assert seen[-1]["status"] == "closed"
    assert seen[-1]["reason"] == "visitor_closed"
    events = await events_for(engine, session["session_id"])
    closing = [e for e in events if e.action == "session_status_changed"]
    assert closing[-1].details["to"] == "closed"
    assert closing[-1].details["reason"] == "visitor_closed"
    # The transcript stays readable by resume; sending is refused.
    r = await visitor_factory()
    await r.hello(resume_token=session["resume_token"], last_seq=0)
    assert (await r.recv_until("message"))["text"] == "thanks, bye"
    code, seen = await r.closed()
    assert code == 1000
    assert seen[-1]["status"] == "closed"


async def test_delete_erases_the_transcript(
    visitor_factory: VisitorFactory, engine: AsyncEngine
) -> None:
    v = await visitor_factory()
    session = await v.hello()
    await v.say("something private", "a")
    await v.say("more private things", "b")
    await v.send({"type": "message", "client_msg_id": "c", "text": "  DELETE \n"})
    code, seen = await v.closed()
    assert code == 1000
    assert seen[-1] == {
        "type": "status",
        "status": "closed",
        "queue_position": None,
        "estimated_wait_s": None,
        "reason": "erased",
    }
    rows = await stored_messages(engine, session["session_id"])
    assert len(rows) == 2
    assert all(r.text is None for r in rows)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(ChatSession).where(ChatSession.id == uuid.UUID(session["session_id"]))
            )
        ).one()
    assert row.erased_at is not None
    assert row.status == "closed"
    events = await events_for(engine, session["session_id"])
    erased = [e for e in events if e.action == "transcript_erased"]
    assert len(erased) == 1
    assert erased[0].details == {"messages": 2}
    assert "private" not in str([e.details for e in events])
    # The resume token died with the transcript.
    r = await visitor_factory()
    await r.send({"type": "hello", "resume_token": session["resume_token"], "last_seq": 0})
    code, seen = await r.closed()
    assert code == 1008
    assert seen[-1]["code"] == "invalid_resume_token"


async def test_delete_must_be_exact(visitor_factory: VisitorFactory, engine: AsyncEngine) -> None:
    v = await visitor_factory()
    session = await v.hello()
    for i, text in enumerate(["delete", "DELETE please", "Delete"]):
        await v.say(text, f"d{i}")
    rows = await stored_messages(engine, session["session_id"])
    assert [r.text for r in rows] == ["delete", "DELETE please", "Delete"]


async def test_connected_visitors_gauge(
    visitor_factory: VisitorFactory, chat_server: LiveServer
) -> None:
    gauge = chat_server.app.state.beacon.metrics.connected_visitors
    before = gauge._value.get()
    vs = [await visitor_factory() for _ in range(3)]
    for v in vs:
        await v.hello()
    assert gauge._value.get() == before + 3
    for v in vs:
        await v.close()
    for _ in range(100):
        if gauge._value.get() == before:
            break
        await asyncio.sleep(0.02)
    assert gauge._value.get() == before


@pytest.mark.timeout(60)
async def test_gone_visitor_is_abandoned_after_grace_but_never_at_high(
    live_server_factory: Callable[..., Any], engine: AsyncEngine
) -> None:
    server = await live_server_factory(visitor_grace_s=0.5, visitor_sweep_interval_s=0.2)
    calm = await Visitor.connect(server.ws_url)
    calm_session = await calm.hello()
    await calm.say("just wanted to talk", "a")
    urgent = await Visitor.connect(server.ws_url)
    urgent_session = await urgent.hello()
    await urgent.say(URGENT, "b")
    await calm.close()
    await urgent.close()

    async def status_of(session_id: str) -> str | None:
        async with engine.connect() as conn:
            return await conn.scalar(
                select(ChatSession.status).where(ChatSession.id == uuid.UUID(session_id))
            )

    for _ in range(100):
        if await status_of(calm_session["session_id"]) == "abandoned":
            break
        await asyncio.sleep(0.1)
    assert await status_of(calm_session["session_id"]) == "abandoned"
    assert await status_of(urgent_session["session_id"]) == "waiting"
    events = await events_for(engine, calm_session["session_id"])
    assert events[-1].details["reason"] == "visitor_gone"
    # Coming back reopens the session (same place: waiting_since is kept).
    back = await Visitor.connect(server.ws_url)
    resumed = await back.hello(resume_token=calm_session["resume_token"], last_seq=1)
    assert resumed["status"] == "waiting"
    await back.close()
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(ChatSession).where(ChatSession.id == uuid.UUID(calm_session["session_id"]))
            )
        ).one()
    assert row.closed_at is None


async def test_store_unavailable_is_reported_not_acked_and_resend_works(
    visitor_factory: VisitorFactory, chat_server: LiveServer, engine: AsyncEngine
) -> None:
    v = await visitor_factory()
    session = await v.hello()
    committer = chat_server.app.state.beacon.committer
    await committer.stop()  # as during a shutdown: nothing can be stored
    try:
        await v.send({"type": "message", "client_msg_id": "later", "text": "are you there"})
        error = await v.recv_until("error")
        assert error["code"] == "temporarily_unavailable"
        assert error["client_msg_id"] == "later"
        assert not [f for f in v.frames if f["type"] == "ack"]
        await v.send({"type": "ping"})
        await v.recv_until("pong")  # the connection survived
    finally:
        await committer.start()
    assert (await v.say("are you there", "later"))["seq"] == 1
    assert len(await stored_messages(engine, session["session_id"])) == 1


async def test_live_delivery_survives_a_lost_bus_listener(
    visitor_factory: VisitorFactory,
    chat_server: LiveServer,
    live_server_factory: Callable[..., Any],
    engine: AsyncEngine,
) -> None:
    from sqlalchemy import text

    other = await live_server_factory()
    v = await visitor_factory()
    session = await v.hello()
    await v.recv_until("status")
    bus = chat_server.app.state.beacon.bus
    pid = bus._conn.get_server_pid()
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    # Sent while this instance may not be listening: the resync after reconnecting finds it.
    await other.app.state.beacon.committer.submit(
        NewMessage(session_id=uuid.UUID(session["session_id"]), sender="volunteer", text="hi")
    )
    frame = await v.recv_until("message", wait_s=15)
    assert frame["seq"] == 1
    for _ in range(100):
        if bus.reconnects:
            break
        await asyncio.sleep(0.05)
    assert bus.reconnects >= 1
    # ... and live delivery works on the new listener.
    await other.app.state.beacon.committer.submit(
        NewMessage(session_id=uuid.UUID(session["session_id"]), sender="volunteer", text="still")
    )
    assert (await v.recv_until("message"))["seq"] == 2
