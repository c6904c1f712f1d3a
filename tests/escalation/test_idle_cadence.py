"""An idle server does (almost) nothing, and still misses no work: the escalation clock and the
router slow to their idle cadence when nothing is open, and every piece of new work wakes them
through its hint. The idle cadences here are ten minutes, so anything this test sees happen was
woken by a hint, not found by a periodic pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.conftest import LiveServer
from tests.escalation.conftest import (
    URGENT_TEXT,
    alert_about,
    is_safety,
    supervisor,
    volunteer_account,
)
from tests.routing.wsclient import VisitorClient, VolunteerClient

IDLE = {
    "escalation_tick_s": 0.05,
    "escalation_idle_tick_s": 600.0,
    "routing_interval_s": 0.05,
    "routing_idle_interval_s": 600.0,
    # The router's idle wait is also bounded by these clocks: make them longer than the test.
    "volunteer_heartbeat_timeout_s": 3600.0,
    "volunteer_grace_s": 3600.0,
    # The retention worker's first pass lands at a random moment of its first 5 minutes, one
    # commit per purge step: once in a full suite run it fell inside a counted window (7 > 3).
    "retention_interval_s": 0.0,
}


class CommitCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1


@contextmanager
def counting_commits(server: LiveServer) -> Iterator[CommitCounter]:
    """Every COMMIT the server's engine sends (background passes included) while inside."""
    sync_engine = server.app.state.beacon.engine.sync_engine
    counter = CommitCounter()
    event.listen(sync_engine, "commit", counter)
    try:
        yield counter
    finally:
        event.remove(sync_engine, "commit", counter)


async def commits_in(server: LiveServer, seconds: float) -> int:
    with counting_commits(server) as counter:
        await asyncio.sleep(seconds)
    return counter.count


async def test_idle_server_sleeps_and_hints_still_wake_every_step(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server = await partnered_server("idleline", **IDLE)
    sup_ws = await VolunteerClient.connect(server.ws_url, (await supervisor(server)).token)
    await asyncio.sleep(0.5)  # the first passes find nothing open
    # At the fast cadence the two workers would commit ~280 times in these 2 s.
    assert await commits_in(server, 2.0) <= 3

    # An urgent message: the rise wakes the clock (safety message, alert), the clock runs out
    # at its deadline and the partner is called; its callback hands the visitor over.
    visitor = await VisitorClient.open(server.ws_url, locale="en-US")
    await visitor.say(URGENT_TEXT, "m1")
    await visitor.expect("message", is_safety)
    await sup_ws.expect("alert", alert_about(visitor.session_id, "escalation_started"))
    [received] = await partner.wait_for(1, within=15.0)
    answered = await partner.call_back(
        server.base_url, received.headers["idempotency-key"], "connected"
    )
    assert answered.status_code == 200
    await visitor.expect("status", lambda f: f["status"] == "handed_off")
    await sup_ws.expect("alert", alert_about(visitor.session_id, "handoff_connected"))

    # Nothing open any more: back to sleep.
    await asyncio.sleep(1.0)
    assert await commits_in(server, 2.0) <= 3
    await visitor.close()
    await sup_ws.close()


async def test_a_handoff_asked_for_on_an_idle_server_is_delivered_at_once(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server = await partnered_server("idlerequest", **IDLE)
    account = await supervisor(server)
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say("hi, can someone talk with me", "m1")
    await asyncio.sleep(0.5)
    # A supervisor hands the (calm, waiting) chat off: no clock was running, so only the
    # request's hint can wake the worker that delivers it.
    staff = await VolunteerClient.connect(server.ws_url, account.token)
    await staff.send({"type": "handoff", "session_id": visitor.session_id})
    reply = await staff.expect("handoff", lambda f: f.get("session_id") == visitor.session_id)
    assert reply["trigger"] == "supervisor_request"
    [received] = await partner.wait_for(1, within=10.0)
    assert received.headers["idempotency-key"] == reply["handoff_id"]
    await staff.close()
    await visitor.close()


async def test_an_idle_router_offers_a_new_chat_at_once(
    partnered_server: Callable[..., Any],
) -> None:
    _partner, server = await partnered_server("idlerouter", **IDLE)
    account = await volunteer_account(server)
    volunteer = await VolunteerClient.connect(server.ws_url, account.token)
    await asyncio.sleep(0.5)
    assert await commits_in(server, 1.0) <= 2
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say("hi, can someone talk with me", "m1")
    await volunteer.expect("offer", lambda f: f.get("session_id") == visitor.session_id)
    await volunteer.send({"type": "accept", "session_id": visitor.session_id})
    await volunteer.expect("assigned", lambda f: f.get("session_id") == visitor.session_id)
    await visitor.expect("status", lambda f: f["status"] == "active")
    await volunteer.close()
    await visitor.close()


async def test_a_held_chat_turning_imminent_on_an_idle_server_alerts_at_once(
    partnered_server: Callable[..., Any],
) -> None:
    _partner, server = await partnered_server("idleinchat", **IDLE)
    account = await volunteer_account(server)
    volunteer = await VolunteerClient.connect(server.ws_url, account.token)
    visitor = await VisitorClient.open(server.ws_url, locale="en-US")
    await visitor.say("hi, can someone talk with me", "m1")
    await volunteer.expect("offer", lambda f: f.get("session_id") == visitor.session_id)
    await volunteer.send({"type": "accept", "session_id": visitor.session_id})
    await volunteer.expect("assigned", lambda f: f.get("session_id") == visitor.session_id)
    await asyncio.sleep(0.5)  # nothing open: both workers at their ten-minute cadence
    await visitor.say(URGENT_TEXT, "m2")
    await volunteer.expect("alert", alert_about(visitor.session_id, "imminent_in_chat"))
    await visitor.expect("message", is_safety)
    await volunteer.close()
    await visitor.close()
