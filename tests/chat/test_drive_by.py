"""Abuse resistance without turning anyone away (SPEC §9, issue 10): sessions that never speak
stay out of the queue and are cleaned up quickly, one client address cannot open sessions
without limit, resuming is never refused, and nothing hides or drops a high+ session.

Drive-by clients connect from their own loopback addresses (127.0.x.y: all of 127/8 is the
loopback interface on Linux), so the per-client limit sees real, distinct peers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect

from app.chat.admission import SessionOpenLimiter, client_key
from app.chat.models import ChatSession
from app.core.db import transaction, utcnow
from app.triage import Level
from tests.chat.conftest import Visitor, end_live_sessions, events_for
from tests.conftest import LiveServer
from tests.routing.helpers import add_session

HELLO = json.dumps({"type": "hello", "resume_token": None, "last_seq": None, "locale": "en"})
LOOSE_FRAMES = {"ws_rate_limit_per_s": 1000.0, "ws_rate_limit_burst": 1000}
# What visitors say here must not rise in urgency (that would reorder the queue): "hi" is none.
CALM = "hi"


async def drive_by(ws_url: str, address: str, *, abort: bool) -> dict[str, Any]:
    """Open a session from ``address`` and drop it without a word; returns its session frame."""
    ws = await connect(f"{ws_url}/v1/chat", local_addr=(address, 0), open_timeout=10)
    try:
        await ws.send(HELLO)
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    finally:
        if abort:
            ws.transport.abort()  # gone mid-connection, no close handshake
        else:
            await ws.close()
    return frame


async def statuses(engine: AsyncEngine, session_ids: list[str]) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ChatSession.id, ChatSession.status).where(
                ChatSession.id.in_([uuid.UUID(s) for s in session_ids])
            )
        )
        return {str(r.id): r.status for r in rows}


async def wait_for_status(
    engine: AsyncEngine, session_ids: list[str], status: str, within_s: float = 30.0
) -> None:
    async with asyncio.timeout(within_s):
        while set((await statuses(engine, session_ids)).values()) != {status}:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # polling the database the server writes


@pytest.mark.timeout(120)
async def test_drive_by_sessions_neither_queue_ahead_nor_linger(
    live_server_factory: Callable[..., Any], engine: AsyncEngine
) -> None:
    server: LiveServer = await live_server_factory(
        **LOOSE_FRAMES,
        session_open_burst=20,
        session_open_per_min=20.0,
        silent_session_ttl_s=0.5,
        visitor_sweep_interval_s=0.1,
    )
    await end_live_sessions(engine)

    canary = await Visitor.connect(server.ws_url, local_addr=("127.0.1.1", 0))
    await canary.hello()
    hello_status = await canary.recv_until("status")
    assert (hello_status["status"], hello_status["queue_position"]) == ("waiting", None)
    await canary.say(CALM)
    assert (await canary.told_position())["queue_position"] == 1
    # Someone who spoke and dropped keeps their place for the grace period.
    dropped = await Visitor.connect(server.ws_url, local_addr=("127.0.1.2", 0))
    dropped_session = await dropped.hello()
    await dropped.say(CALM)
    assert (await dropped.told_position())["queue_position"] == 2
    await dropped.close()

    # 200 drive-bys from 20 addresses (10 each: inside the limit, so all of them really open).
    gate = asyncio.Semaphore(20)

    async def one(i: int) -> dict[str, Any]:
        async with gate:
            return await drive_by(server.ws_url, f"127.0.2.{i % 20 + 1}", abort=i % 2 == 0)

    frames = await asyncio.gather(*(one(i) for i in range(200)))
    assert [f["type"] for f in frames] == ["session"] * 200
    drive_by_ids = [f["session_id"] for f in frames]

    late = await Visitor.connect(server.ws_url, local_addr=("127.0.1.3", 0))
    await late.hello()
    await late.say(CALM)
    # Behind the two who spoke, not behind 200 drive-bys.
    assert (await late.told_position())["queue_position"] == 3
    queue = server.app.state.beacon.queue
    assert (await queue.lookup(uuid.UUID(canary.frames[0]["session_id"]), fresh=True)).position == 1

    # Cleaned up within the silent TTL, not the 10-minute grace; those who spoke are untouched.
    await wait_for_status(engine, drive_by_ids, "abandoned")
    spoken = [
        canary.frames[0]["session_id"],
        dropped_session["session_id"],
        late.frames[0]["session_id"],
    ]
    assert set((await statuses(engine, spoken)).values()) == {"waiting"}
    reasons = [e.details.get("reason") for e in await events_for(engine, drive_by_ids[0])]
    assert "never_spoke" in reasons

    # Nothing is lost by the clean-up: the token still reopens the session, still out of line.
    back = await Visitor.connect(server.ws_url, local_addr=("127.0.2.1", 0))
    reopened = await back.hello(resume_token=frames[0]["resume_token"], last_seq=0)
    assert reopened["session_id"] == drive_by_ids[0]
    back_status = await back.recv_until("status")
    assert (back_status["status"], back_status["queue_position"]) == ("waiting", None)
    assert (await queue.lookup(uuid.UUID(late.frames[0]["session_id"]), fresh=True)).position == 3
    for visitor in (canary, late, back):
        await visitor.close()


async def test_one_address_cannot_open_sessions_without_limit(
    live_server_factory: Callable[..., Any], engine: AsyncEngine
) -> None:
    server: LiveServer = await live_server_factory(
        **LOOSE_FRAMES, session_open_burst=3, session_open_per_min=1.0
    )
    first = await Visitor.connect(server.ws_url, local_addr=("127.0.3.1", 0))
    session = await first.hello()
    await first.say(CALM)
    for _ in range(2):
        assert (await drive_by(server.ws_url, "127.0.3.1", abort=False))["type"] == "session"

    refused = await Visitor.connect(server.ws_url, local_addr=("127.0.3.1", 0))
    await refused.send(json.loads(HELLO))
    code, seen = await refused.closed()
    assert code == 1013
    assert [f["code"] for f in seen] == ["too_many_sessions"]
    assert isinstance(seen[0]["retry_after_s"], int)
    assert seen[0]["retry_after_s"] >= 1

    # Someone who already has a chat is never refused: resuming is not counted.
    await first.close()
    again = await Visitor.connect(server.ws_url, local_addr=("127.0.3.1", 0))
    resumed = await again.hello(resume_token=session["resume_token"], last_seq=0)
    assert resumed["session_id"] == session["session_id"]
    assert (await again.say(CALM))["seq"] == 2
    # Another address has its own allowance.
    assert (await drive_by(server.ws_url, "127.0.3.2", abort=False))["type"] == "session"
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        metrics = (await http.get("/metrics")).text
    assert "beacon_sessions_refused_total 1.0" in metrics
    await again.close()


@pytest.mark.timeout(60)
async def test_clean_up_spares_a_visitor_still_there_and_every_high_session(
    live_server_factory: Callable[..., Any], engine: AsyncEngine
) -> None:
    server: LiveServer = await live_server_factory(
        **LOOSE_FRAMES, silent_session_ttl_s=0.3, visitor_sweep_interval_s=0.1
    )
    state = server.app.state.beacon
    await end_live_sessions(engine)
    # Still finding words: connected, silent, well past the TTL.
    hesitant = await Visitor.connect(server.ws_url)
    hesitant_id = (await hesitant.hello())["session_id"]
    # A high session with no recorded first message (a row from before the upgrade, or any
    # future path that raises urgency another way), its visitor gone for an hour.
    long_ago = utcnow() - timedelta(hours=1)
    async with transaction(state.sessionmaker) as db:
        urgent = await add_session(db, urgency=int(Level.high), spoke=False)
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id == urgent)
            .values(visitor_connected=False, visitor_seen_at=long_ago, waiting_since=long_ago)
        )
    try:
        # A drive-by that left after both: once it is swept, the sweeper has seen them too.
        gone = (await drive_by(server.ws_url, "127.0.4.1", abort=False))["session_id"]
        await wait_for_status(engine, [gone], "abandoned")
        assert await statuses(engine, [hesitant_id, str(urgent)]) == {
            hesitant_id: "waiting",
            str(urgent): "waiting",
        }
        await hesitant.send({"type": "ping"})
        assert (await hesitant.recv_until("pong"))["type"] == "pong"  # the socket is still open
        assert (await state.queue.lookup(urgent, fresh=True)).position == 1  # not hidden
        async with state.sessionmaker() as db:
            assert urgent in {s.id for s in await _routable(db, state.settings)}
    finally:
        await hesitant.close()
        await end_live_sessions(engine)


async def _routable(db: Any, settings: Any) -> list[Any]:
    from app.routing.dispatch import waiting_sessions

    return await waiting_sessions(db, settings)


def test_client_key_counts_addresses_and_ipv6_blocks() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key(None) == "-"
    assert client_key("not-an-ip") == "not-an-ip"


def test_session_open_limiter_burst_refill_and_memory_bound() -> None:
    now = [0.0]
    limiter = SessionOpenLimiter(burst=2, per_min=6.0, max_clients=2, clock=lambda: now[0])
    assert limiter.try_open("a") is None
    assert limiter.try_open("a") is None
    wait = limiter.try_open("a")
    assert wait is not None
    assert 9.9 < wait <= 10.0  # 6 a minute: one every 10 s
    assert limiter.try_open("b") is None  # another client has its own bucket
    now[0] = 10.0
    assert limiter.try_open("a") is None  # refilled
    assert limiter.try_open("a") is not None
    limiter.try_open("c")  # a third client: the least recently seen ("b") is forgotten
    assert limiter.try_open("a") is not None  # "a" is still remembered, still empty
