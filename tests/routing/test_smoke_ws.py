from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.routing.wsclient import VolunteerClient


async def test_offer_accept(world_factory: Callable[..., Any]) -> None:
    world = await world_factory()
    v = await world.volunteer(capacity=2)
    client = await VolunteerClient.connect(world.server.ws_url, v.token)
    session_id = await world.session(urgency=3)
    offer = await client.expect("offer", lambda f: f["session_id"] == str(session_id))
    await client.send({"type": "accept", "session_id": str(session_id)})
    assigned = await client.expect("assigned")
    assert assigned["session_id"] == str(session_id)
    await client.close()
