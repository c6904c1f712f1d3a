"""High-urgency visitors who drop (SPEC §3): never abandoned, alerted once to supervisors, listed
for them. Real uvicorn, real `websockets` clients, Postgres."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection, connect

from app.audit.models import Event
from app.chat.models import ChatSession
from app.core.db import transaction
from app.routing import accounts
from app.routing.assignments import LIVE_STATUSES
from tests.conftest import LiveServer
from tests.routing.wsclient import VolunteerClient

GRACE_S = 0.6
FAST = {
    "visitor_grace_s": GRACE_S,
    "visitor_sweep_interval_s": 0.1,
    "routing_interval_s": 0.1,
    "ws_rate_limit_per_s": 100.0,
    "ws_rate_limit_burst": 100,
}


def sessionmaker_of(server: LiveServer) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = server.app.state.beacon.sessionmaker
    return maker


async def new_account(server: LiveServer, role: str) -> str:
    # Capacity 0: the router never offers them a chat, so sessions keep their own state.
    async with transaction(sessionmaker_of(server)) as db:
        issued = await accounts.create_volunteer(
            db, name=f"{role}-{uuid.uuid4().hex[:6]}", role=role, capacity=0, token_ttl_s=3600
        )
    return issued.token


class Visitor:
    def __init__(self, ws: ClientConnection, session: dict[str, Any]) -> None:
        self.ws = ws
        self.session_id: str = session["session_id"]
        self.resume_token: str = session["resume_token"]

    @classmethod
    async def open(cls, server: LiveServer, resume_token: str | None = None) -> Visitor:
        ws = await connect(f"{server.ws_url}/v1/chat")
        hello = {"type": "hello", "resume_token": resume_token, "last_seq": 0, "locale": "en"}
        await ws.send(json.dumps(hello))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == "session":
                return cls(ws, frame)


async def set_urgency(server: LiveServer, session_id: str, urgency: int) -> None:
    # Straight to the database: these tests are about presence, not the triage engine's levels.
    async with transaction(sessionmaker_of(server)) as db:
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id == uuid.UUID(session_id))
            .values(urgency=urgency, signals=["method:overdose"])
        )


async def session_row(server: LiveServer, session_id: str) -> ChatSession:
    async with sessionmaker_of(server)() as db:
        row = await db.get(ChatSession, uuid.UUID(session_id))
        assert row is not None
        return row


async def events(server: LiveServer, session_id: str, action: str) -> list[Event]:
    async with sessionmaker_of(server)() as db:
        rows = await db.scalars(
            select(Event)
            .where(Event.subject_id == session_id, Event.action == action)
            .order_by(Event.id)
        )
        return list(rows.all())


async def at_risk(server: LiveServer, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        return await client.get(
            "/v1/dashboard/at-risk", headers={"Authorization": f"Bearer {token}"}
        )


def listed(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {item["session_id"]: item for item in response.json()["sessions"]}


def is_alert(session_id: str, reason: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("session_id") == session_id and f.get("reason") == reason


async def wait_until_abandoned(server: LiveServer, session_id: str, within: float) -> None:
    deadline = time.monotonic() + within
    while (await session_row(server, session_id)).status != "abandoned":
        assert time.monotonic() < deadline, "the abandonment sweeper never ran"
        await asyncio.sleep(0.05)


async def test_a_high_visitor_who_drops_goes_to_the_supervisors_list(
    live_server_factory: Callable[..., Any],
) -> None:
    server: LiveServer = await live_server_factory(**FAST)
    supervisor = await VolunteerClient.connect(
        server.ws_url, await new_account(server, "supervisor")
    )
    assert supervisor.ready["role"] == "supervisor"
    dropping = await Visitor.open(server)
    staying = await Visitor.open(server)
    calm = await Visitor.open(server)
    await set_urgency(server, dropping.session_id, 3)
    await set_urgency(server, staying.session_id, 4)
    await set_urgency(server, calm.session_id, 2)

    await dropping.ws.close()  # the connection drops: no `close` frame, the chat is not ended
    await calm.ws.close()
    alert = await supervisor.expect(
        "alert", is_alert(dropping.session_id, "visitor_lost"), within=10.0
    )

    assert alert["kind"] == "at_risk"
    assert alert["urgency"] == "high"
    assert alert["urgency_value"] == 3
    assert alert["status"] in LIVE_STATUSES
    assert alert["gone_s"] >= GRACE_S
    # The grace has passed for the moderate visitor too, and software gave up on them ...
    await wait_until_abandoned(server, calm.session_id, within=10.0)
    # ... but never on the high one: it keeps its state (still queued for a human).
    row = await session_row(server, dropping.session_id)
    assert row.status in LIVE_STATUSES
    assert row.closed_at is None
    assert row.visitor_lost_at is not None

    token = await new_account(server, "supervisor")
    items = listed(await at_risk(server, token))
    item = items[dropping.session_id]
    assert item["urgency"] == "high"
    assert item["status"] == row.status
    assert item["signals"] == ["method:overdose"]
    assert item["alerted_at"] is not None
    assert item["gone_s"] >= GRACE_S
    assert item["volunteer_id"] is None
    # A connected imminent visitor is not "at risk of being lost", however long they stay.
    assert staying.session_id not in items
    assert calm.session_id not in items

    # Many sweeps later (on this and any other instance): still one alert, one audit event.
    await asyncio.sleep(10 * FAST["visitor_sweep_interval_s"])
    later = await supervisor.drain(0.3)
    assert not [f for f in later if is_alert(dropping.session_id, "visitor_lost")(f)]
    assert not [
        f for f in later if f.get("kind") == "at_risk" and f["session_id"] == staying.session_id
    ]
    lost = await events(server, dropping.session_id, "visitor_lost")
    assert len(lost) == 1
    assert lost[0].details["urgency"] == 3
    assert (await session_row(server, dropping.session_id)).status in LIVE_STATUSES

    # The visitor comes back: supervisors are told, the session leaves the list.
    back = await Visitor.open(server, resume_token=dropping.resume_token)
    assert back.session_id == dropping.session_id
    await supervisor.expect("alert", is_alert(dropping.session_id, "visitor_returned"), within=10.0)
    assert dropping.session_id not in listed(await at_risk(server, token))
    assert (await session_row(server, dropping.session_id)).visitor_lost_at is None
    assert len(await events(server, dropping.session_id, "visitor_returned")) == 1

    # ... and drops again: a new drop, a new alert.
    await back.ws.close()
    await supervisor.expect("alert", is_alert(dropping.session_id, "visitor_lost"), within=10.0)
    assert len(await events(server, dropping.session_id, "visitor_lost")) == 2
    assert dropping.session_id in listed(await at_risk(server, token))

    await staying.ws.close()
    await supervisor.close()


async def test_two_instances_alert_once(live_server_factory: Callable[..., Any]) -> None:
    first: LiveServer = await live_server_factory(**FAST)
    second: LiveServer = await live_server_factory(**FAST)
    on_first = await VolunteerClient.connect(first.ws_url, await new_account(first, "supervisor"))
    on_second = await VolunteerClient.connect(
        second.ws_url, await new_account(second, "supervisor")
    )
    visitor = await Visitor.open(first)
    await set_urgency(first, visitor.session_id, 4)

    await visitor.ws.close()
    for supervisor in (on_first, on_second):
        alert = await supervisor.expect(
            "alert", is_alert(visitor.session_id, "visitor_lost"), within=10.0
        )
        assert alert["urgency"] == "imminent"

    await asyncio.sleep(10 * FAST["visitor_sweep_interval_s"])
    for supervisor in (on_first, on_second):
        again = [
            f
            for f in await supervisor.drain(0.3)
            if is_alert(visitor.session_id, "visitor_lost")(f)
        ]
        assert again == []
    assert len(await events(first, visitor.session_id, "visitor_lost")) == 1
    assert (await session_row(first, visitor.session_id)).status in LIVE_STATUSES
    await on_first.close()
    await on_second.close()


async def test_the_list_is_for_supervisors_only(live_server_factory: Callable[..., Any]) -> None:
    server: LiveServer = await live_server_factory(**FAST)
    volunteer = await at_risk(server, await new_account(server, "volunteer"))
    assert volunteer.status_code == 403
    assert volunteer.json()["error"] == "forbidden"
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        anonymous = await client.get("/v1/dashboard/at-risk")
        bad = await client.get(
            "/v1/dashboard/at-risk", headers={"Authorization": "Bearer not-a-token"}
        )
        schema = (await client.get("/openapi.json")).json()
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthorized"
    assert bad.status_code == 401
    operation = schema["paths"]["/v1/dashboard/at-risk"]["get"]
    assert {"200", "401", "403"} <= set(operation["responses"])
    assert operation["responses"]["403"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody"
    )


async def test_no_alert_without_a_drop(live_server_factory: Callable[..., Any]) -> None:
    """A connected high visitor stays off the list through many grace periods (the heartbeat
    keeps them seen), and nothing about them reaches supervisors."""
    server: LiveServer = await live_server_factory(**FAST)
    supervisor = await VolunteerClient.connect(
        server.ws_url, await new_account(server, "supervisor")
    )
    visitor = await Visitor.open(server)
    await set_urgency(server, visitor.session_id, 3)
    await asyncio.sleep(4 * GRACE_S)
    frames = await supervisor.drain(0.2)
    assert not [
        f for f in frames if f.get("kind") == "at_risk" and f["session_id"] == visitor.session_id
    ]
    assert visitor.session_id not in listed(
        await at_risk(server, await new_account(server, "supervisor"))
    )
    async with sessionmaker_of(server)() as db:
        lost = await db.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.subject_id == visitor.session_id, Event.action == "visitor_lost")
        )
    assert lost == 0
    await visitor.ws.close()
    await supervisor.close()
