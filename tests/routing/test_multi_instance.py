"""Two instances on one Postgres, both routing: offers reach a volunteer on the other instance
(LISTEN/NOTIFY), chats cross instances, and no session is offered or held twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from app.core.db import transaction
from app.routing.models import Assignment
from tests.routing.conftest import FAST, World
from tests.routing.wsclient import VisitorClient, VolunteerClient, about


async def test_two_instances_route_without_double_assignment(
    world_factory: Callable[..., Any], live_server_factory: Callable[..., Any]
) -> None:
    first: World = await world_factory(offer_timeout_s=10.0)
    second = World(await live_server_factory(**{**FAST, "offer_timeout_s": 10.0}))
    volunteers = [await first.volunteer(capacity=2) for _ in range(4)]
    clients = [
        await VolunteerClient.connect((first if i % 2 else second).server.ws_url, account.token)
        for i, account in enumerate(volunteers)
    ]
    # Visitors arrive on both instances.
    visitors = [
        await VisitorClient.open((second if i % 2 else first).server.ws_url) for i in range(8)
    ]
    for i, visitor in enumerate(visitors):
        await visitor.say("hello", f"hello-{i}")
    offers: dict[str, list[int]] = {}

    async def accept_all(index: int, client: VolunteerClient) -> None:
        for _ in range(2):
            offer = await client.expect("offer", within=10)
            offers.setdefault(offer["session_id"], []).append(index)
            await client.send({"type": "accept", "session_id": offer["session_id"]})
            await client.expect("assigned", about(offer["session_id"]))

    await asyncio.gather(*(accept_all(i, c) for i, c in enumerate(clients)))
    assert sorted(offers) == sorted(v.session_id for v in visitors)
    assert all(len(who) == 1 for who in offers.values())

    # A visitor on one instance and their volunteer on the other still talk.
    for visitor in visitors:
        holder = clients[offers[visitor.session_id][0]]
        ack = await visitor.say("are you there?", f"q-{visitor.session_id[:8]}")
        heard = await holder.expect("message", about(visitor.session_id, text="are you there?"))
        assert heard["seq"] == ack["seq"]

    async with transaction(first.state.sessionmaker) as db:
        ids = [uuid.UUID(v.session_id) for v in visitors]
        per_session = (
            await db.execute(
                select(Assignment.session_id, func.count())
                .where(Assignment.session_id.in_(ids))
                .group_by(Assignment.session_id)
            )
        ).all()
    assert len(per_session) == len(visitors)
    assert all(count == 1 for _, count in per_session)  # never even offered twice
    for client in clients:
        await client.close()
    for visitor in visitors:
        await visitor.close()
