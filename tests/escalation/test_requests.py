"""Handoff asked for by people (volunteer socket, REST), active rescue in two audited steps, and
the clock standing down when a volunteer answers in time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from app.audit.models import Event
from app.core.db import transaction
from app.escalation.models import Handoff
from app.routing.accounts import IssuedAccount
from tests.escalation.conftest import (
    URGENT_TEXT,
    stored_urgency,
    supervisor,
    volunteer_account,
)
from tests.routing.wsclient import VisitorClient, VolunteerClient, about


async def test_volunteer_hands_off_over_the_socket(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server = await partnered_server("wsline")
    account = await volunteer_account(server)
    volunteer = await VolunteerClient.connect(server.ws_url, account.token)
    bystander = await VolunteerClient.connect(
        server.ws_url, (await volunteer_account(server, capacity=0)).token
    )
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say("hi, can someone talk with me", "m1")
    await volunteer.expect("offer", about(visitor.session_id))
    await volunteer.send({"type": "accept", "session_id": visitor.session_id})
    await volunteer.expect("assigned", about(visitor.session_id))

    # Someone who does not hold the chat may not hand it off.
    await bystander.send({"type": "handoff", "session_id": visitor.session_id})
    refused = await bystander.expect("error", about(visitor.session_id))
    assert refused["code"] == "not_assigned"

    await volunteer.send({"type": "handoff", "session_id": visitor.session_id})
    reply = await volunteer.expect("handoff", about(visitor.session_id))
    assert reply["status"] == "delivering"
    assert reply["trigger"] == "volunteer_request"
    received = await partner.wait_for(1, within=10.0)
    assert received[0].payload["reason"] == "volunteer_request"
    assert received[0].headers["idempotency-key"] == reply["handoff_id"]
    # Asking twice does not start a second handoff.
    await volunteer.send({"type": "handoff", "session_id": visitor.session_id})
    again = await volunteer.expect("handoff", about(visitor.session_id))
    assert again["handoff_id"] == reply["handoff_id"]

    response = await partner.call_back(server.base_url, reply["handoff_id"], "connected")
    assert response.status_code == 200
    await visitor.expect("status", lambda f: f["status"] == "handed_off", within=10.0)
    await volunteer.expect("session", about(visitor.session_id, status="handed_off"), within=10.0)
    # A human was there: no automatic safety message for a requested handoff.
    await asyncio.sleep(0.3)
    assert not [f for f in visitor.seen if f.get("kind") == "safety" and "trained" in f["text"]]
    for client in (volunteer, bystander, visitor):
        await client.close()


async def test_volunteer_answering_in_time_stops_the_clock(
    partnered_server: Callable[..., Any],
) -> None:
    # The volunteer must accept before the clock runs out: 4 s leaves room on a loaded machine.
    partner, server = await partnered_server("notneeded", handoff_deadline_s=4.0)
    account = await volunteer_account(server)
    volunteer = await VolunteerClient.connect(server.ws_url, account.token)
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say(URGENT_TEXT, "m1")
    await visitor.expect("message", lambda f: f.get("kind") == "safety", within=10.0)
    await volunteer.expect("offer", about(visitor.session_id), within=10.0)
    assert await stored_urgency(server, visitor.session_id) == 4
    await volunteer.send({"type": "accept", "session_id": visitor.session_id})
    await volunteer.expect("assigned", about(visitor.session_id))
    # The clock runs out and stands down (no fixed sleep: done as soon as the row says so).
    deadline = time.monotonic() + 4.0 + 10.0
    status = None
    while status != "cancelled" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        async with transaction(server.app.state.beacon.sessionmaker) as db:
            status = await db.scalar(
                select(Handoff.status).where(Handoff.session_id == uuid.UUID(visitor.session_id))
            )
    assert status == "cancelled"
    assert partner.received == []
    await volunteer.close()
    await visitor.close()


async def test_active_rescue_is_supervisor_only_two_step_and_audited(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server = await partnered_server("rescueline")
    sup_a = await supervisor(server)
    sup_b = await supervisor(server)
    plain = await volunteer_account(server, capacity=0)
    watcher = await VolunteerClient.connect(server.ws_url, sup_b.token)
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say("hello", "m1")

    def auth(account: IssuedAccount) -> dict[str, str]:
        return {"Authorization": f"Bearer {account.token}"}

    async with httpx.AsyncClient(base_url=server.base_url) as client:
        url = f"/v1/dashboard/sessions/{visitor.session_id}/rescue"
        denied = await client.post(url, headers=auth(plain))
        assert denied.status_code == 403
        assert denied.json()["error"] == "supervisors_only"
        requested = await client.post(url, headers=auth(sup_a))
        assert requested.status_code == 200, requested.text
        rescue = requested.json()
        assert rescue["status"] == "requested"
        await watcher.expect(
            "alert",
            lambda f: (
                f.get("reason") == "active_rescue_requested"
                and f.get("rescue_id") == rescue["rescue_id"]
            ),
        )
        # Step one sends nothing.
        await asyncio.sleep(0.3)
        assert partner.received == []

        confirm_url = f"/v1/dashboard/rescues/{rescue['rescue_id']}/confirm"
        denied = await client.post(confirm_url, headers=auth(plain))
        assert denied.status_code == 403
        confirmed = await client.post(confirm_url, headers=auth(sup_b))
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["status"] == "confirmed"
        assert confirmed.json()["decided_by"] == str(sup_b.id)
        twice = await client.post(confirm_url, headers=auth(sup_a))
        assert twice.status_code == 409
        assert twice.json()["error"] == "invalid_transition"
        missing = await client.post(
            f"/v1/dashboard/rescues/{uuid.uuid4()}/confirm", headers=auth(sup_a)
        )
        assert missing.status_code == 404

        received = await partner.wait_for(1, within=10.0)
        assert received[0].payload["active_rescue"] is True
        assert received[0].payload["reason"] == "active_rescue"

        detail = await client.get(
            f"/v1/handoffs/{confirmed.json()['handoff_id']}", headers=auth(sup_a)
        )
        assert detail.status_code == 200
        assert detail.json()["active_rescue"] is True
        assert detail.json()["trigger"] == "active_rescue"
        assert (
            await client.get(f"/v1/handoffs/{confirmed.json()['handoff_id']}", headers=auth(plain))
        ).status_code == 403

    async with transaction(server.app.state.beacon.sessionmaker) as db:
        events = (
            await db.scalars(
                select(Event).where(Event.subject_id == visitor.session_id).order_by(Event.id)
            )
        ).all()
    audit = [(e.action, e.actor_id) for e in events if "rescue" in e.action]
    assert audit == [
        ("active_rescue_requested", str(sup_a.id)),
        ("active_rescue_confirmed", str(sup_b.id)),
    ]
    await watcher.close()
    await visitor.close()
