"""The volunteer socket's frame limit: wide enough for one person answering several chats at
once (and resending after a reconnect), still a hard stop for a flood."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from app.core.config import Settings
from tests.routing.wsclient import VolunteerClient, about

# The shipped visitor limits, so that nothing but the volunteer's own limit decides here.
VISITOR_LIMITS = {
    "ws_rate_limit_per_s": Settings.model_fields["ws_rate_limit_per_s"].default,
    "ws_rate_limit_burst": Settings.model_fields["ws_rate_limit_burst"].default,
    "ws_flood_disconnect_after": Settings.model_fields["ws_flood_disconnect_after"].default,
}
CHATS = 5
REPLIES = 12


async def test_a_volunteer_replying_across_many_chats_is_not_throttled(
    world_factory: Callable[..., Any],
) -> None:
    # Was: the visitor's 5 frames/s (bursts of 20) applied, so the 21st reply got rate_limited
    # and a volunteer catching up on five chats was soon disconnected.
    world = await world_factory(**VISITOR_LIMITS)
    account = await world.volunteer(capacity=CHATS)
    client = await VolunteerClient.connect(world.server.ws_url, account.token)
    created = {str(await world.session(urgency=1)) for _ in range(CHATS)}
    sessions: list[str] = []
    for _ in range(CHATS):  # the router offers each to the one volunteer online
        offer = await client.expect("offer", within=15)
        await client.send({"type": "accept", "session_id": offer["session_id"]})
        await client.expect("assigned", about(offer["session_id"]))
        sessions.append(offer["session_id"])
    assert set(sessions) == created
    try:
        # Every reply at once, as a dashboard flushing its outbox after a reconnect would.
        for k in range(REPLIES):
            for session_id in sessions:
                await client.send(
                    {
                        "type": "message",
                        "session_id": session_id,
                        "client_msg_id": f"r{k}-{session_id[:8]}",
                        "text": f"reply {k}",
                    }
                )
        await client.send({"type": "ping"})
        await client.expect("pong", within=30)
        acks = [f for f in client.seen if f["type"] == "ack"]
        errors = [f for f in client.seen if f["type"] == "error"]
        assert errors == []
        assert len(acks) == CHATS * REPLIES
        for session_id in sessions:
            seqs = sorted(a["seq"] for a in acks if a["session_id"] == session_id)
            assert seqs == list(range(1, REPLIES + 1))
    finally:
        await client.close()


async def test_a_flooding_volunteer_socket_is_refused_then_closed_1008(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory(**VISITOR_LIMITS)
    account = await world.volunteer()
    client = await VolunteerClient.connect(world.server.ws_url, account.token)
    limits = world.state.settings
    flood = 10 * (limits.volunteer_ws_rate_limit_burst + limits.volunteer_ws_flood_disconnect_after)
    try:
        for _ in range(flood):
            await client.ws.send(json.dumps({"type": "ping"}))
    except ConnectionClosed:
        pass  # closed mid-flood: what this test wants
    received: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(30):
            async for raw in client.ws:
                received.append(json.loads(raw))
    except ConnectionClosed:
        pass
    assert client.ws.close_code == 1008
    codes = [f.get("code") for f in received if f["type"] == "error"]
    assert "rate_limited" in codes
    assert received[-1]["code"] == "rate_limited"
    # Refused, not served: the flood got far fewer pongs than pings.
    assert sum(1 for f in received if f["type"] == "pong") < flood // 2
