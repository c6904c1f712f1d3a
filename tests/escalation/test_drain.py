"""An instance that stops (SIGTERM runs the same lifespan shutdown) while a handoff webhook is on
its way hands the delivery back at once, instead of leaving its lease to keep every other
instance off an urgent handoff until the lease runs out."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import utcnow
from app.escalation.models import Handoff
from tests.conftest import LiveServer
from tests.escalation.conftest import FAST, URGENT_TEXT, write_partners
from tests.escalation.partner_server import PartnerServer
from tests.routing.wsclient import VisitorClient

# Long enough that only a released lease, not an expired one, lets the other instance in.
SLOW_PARTNER = {"handoff_request_timeout_s": 60.0, "handoff_delivery_deadline_s": 600.0}


async def _handoff(engine: AsyncEngine, session_id: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                select(Handoff.__table__).where(Handoff.session_id == uuid.UUID(session_id))
            )
        ).one()


async def test_stopping_hands_an_in_flight_webhook_back_to_the_other_instances(
    engine: AsyncEngine,
    tmp_path: Path,
    partnered_server: Callable[..., Any],
    live_server_factory: Callable[..., Any],
) -> None:
    partner: PartnerServer
    server: LiveServer
    partner, server = await partnered_server("drainline", **SLOW_PARTNER)
    partner.default = "hang"  # takes the request and answers only after the test is over
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say(URGENT_TEXT, "m1")
    await partner.wait_for(1, within=15)  # the webhook is in flight
    await server.stop()

    handoff = await _handoff(engine, visitor.session_id)
    assert (handoff.status, handoff.attempts) == ("delivering", 1)
    assert handoff.next_attempt_at <= utcnow()  # due again now, not when the lease expires

    partner.default = "ok"
    await live_server_factory(
        **{**FAST, **SLOW_PARTNER},
        partners_file=write_partners(tmp_path, partner.config_entry()),
    )
    received = await partner.wait_for(2, within=30)
    # The same delivery, re-sent: the partner can tell it is the same handoff.
    assert received[1].headers["idempotency-key"] == received[0].headers["idempotency-key"]
    assert received[1].payload["session_id"] == visitor.session_id
