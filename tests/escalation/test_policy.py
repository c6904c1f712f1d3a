"""What the escalation policy obliges for `high` (SPEC §5: "configurable for high"), end to end on
a real uvicorn with real triage: off by default, on with BEACON_ESCALATE_HIGH."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import transaction
from app.escalation.models import Handoff
from tests.escalation.conftest import (
    FAST,
    HIGH_TEXT,
    clean_slate,
    stored_urgency,
    supervisor,
    write_partners,
)
from tests.escalation.partner_server import PartnerServer
from tests.routing.wsclient import VisitorClient, VolunteerClient


async def _handoffs(server: Any, session_id: str) -> list[Handoff]:
    async with transaction(server.app.state.beacon.sessionmaker) as db:
        return list(
            (
                await db.scalars(select(Handoff).where(Handoff.session_id == uuid.UUID(session_id)))
            ).all()
        )


async def test_high_escalates_when_escalate_high_is_on(
    engine: AsyncEngine,
    tmp_path: Path,
    partner_factory: Callable[..., Any],
    live_server_factory: Callable[..., Any],
) -> None:
    await clean_slate(engine)
    partner: PartnerServer = await partner_factory("highline")
    server = await live_server_factory(
        **FAST,
        escalate_high=True,
        handoff_deadline_high_s=1.5,
        partners_file=write_partners(tmp_path, partner.config_entry()),
    )
    sup_ws = await VolunteerClient.connect(server.ws_url, (await supervisor(server)).token)
    visitor = await VisitorClient.open(server.ws_url, locale="en-US")
    await visitor.say(HIGH_TEXT, "m1")

    safety = await visitor.expect(
        "message", lambda f: f["sender"] == "system" and f.get("kind") == "safety", within=1.0
    )
    assert "911" in safety["text"]
    assert partner.phone in safety["text"]
    alert = await sup_ws.expect(
        "alert",
        lambda f: (
            f.get("session_id") == visitor.session_id and f.get("reason") == "escalation_started"
        ),
        within=2.0,
    )
    assert alert["urgency"] == "high"
    assert await stored_urgency(server, visitor.session_id) == 3
    received = await partner.wait_for(1, within=10.0)
    assert received[0].payload["urgency"] == "high"
    assert received[0].payload["session_id"] == visitor.session_id
    [handoff] = await _handoffs(server, visitor.session_id)
    assert handoff.level == 3
    assert handoff.trigger == "auto"
    await sup_ws.close()
    await visitor.close()


async def test_high_under_the_default_policy_alerts_supervisors_only(
    engine: AsyncEngine,
    tmp_path: Path,
    partner_factory: Callable[..., Any],
    live_server_factory: Callable[..., Any],
) -> None:
    await clean_slate(engine)
    partner: PartnerServer = await partner_factory("quietline")
    server = await live_server_factory(
        **FAST,
        # Shortened too, so that the wait below would see a clock if one had started.
        handoff_deadline_high_s=1.5,
        partners_file=write_partners(tmp_path, partner.config_entry()),
    )
    assert server.app.state.beacon.settings.escalate_high is False
    sup_ws = await VolunteerClient.connect(server.ws_url, (await supervisor(server)).token)
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say(HIGH_TEXT, "m1")

    # Routing still tells supervisors about the rise to high.
    raised = await sup_ws.expect(
        "alert",
        lambda f: f.get("session_id") == visitor.session_id and f.get("reason") == "urgency_raised",
        within=3.0,
    )
    assert raised["urgency"] == "high"
    assert await stored_urgency(server, visitor.session_id) == 3

    # Past the deadline a clock would have had: no safety message, no handoff.
    with pytest.raises(TimeoutError):
        await visitor.expect(
            "message", lambda f: f["sender"] == "system", within=FAST["handoff_deadline_s"] + 1.0
        )
    assert await _handoffs(server, visitor.session_id) == []
    assert partner.received == []
    escalation = [
        f
        for f in await sup_ws.drain()
        if f.get("type") == "alert" and f.get("kind") == "escalation"
    ]
    assert not [f for f in escalation if f.get("session_id") == visitor.session_id]
    await sup_ws.close()
    await visitor.close()
