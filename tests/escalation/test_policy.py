"""What the escalation policy obliges for `high` (SPEC §5: "configurable for high"), end to end on
a real uvicorn with real triage: off by default, on with BEACON_ESCALATE_HIGH."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.escalation.conftest import (
    FAST,
    HIGH_TEXT,
    alert_about,
    handoffs_of,
    is_safety,
    stored_urgency,
    supervisor,
)
from tests.routing.wsclient import VisitorClient, VolunteerClient


async def test_high_escalates_when_escalate_high_is_on(
    partnered_server: Callable[..., Any],
) -> None:
    partner, server = await partnered_server(
        "highline", escalate_high=True, handoff_deadline_high_s=1.5
    )
    sup_ws = await VolunteerClient.connect(server.ws_url, (await supervisor(server)).token)
    visitor = await VisitorClient.open(server.ws_url, locale="en-US")
    await visitor.say(HIGH_TEXT, "m1")

    safety = await visitor.expect("message", is_safety, within=10.0)
    assert "911" in safety["text"]
    assert partner.phone in safety["text"]
    alert = await sup_ws.expect(
        "alert", alert_about(visitor.session_id, "escalation_started"), within=10.0
    )
    assert alert["urgency"] == "high"
    assert await stored_urgency(server, visitor.session_id) == 3
    received = await partner.wait_for(1, within=10.0)
    assert received[0].payload["urgency"] == "high"
    assert received[0].payload["session_id"] == visitor.session_id
    [handoff] = await handoffs_of(server, visitor.session_id)
    assert handoff.level == 3
    assert handoff.trigger == "auto"
    await sup_ws.close()
    await visitor.close()


async def test_high_under_the_default_policy_alerts_supervisors_only(
    partnered_server: Callable[..., Any],
) -> None:
    # Shortened too, so that the wait below would see a clock if one had started.
    partner, server = await partnered_server("quietline", handoff_deadline_high_s=1.5)
    assert server.app.state.beacon.settings.escalate_high is False
    sup_ws = await VolunteerClient.connect(server.ws_url, (await supervisor(server)).token)
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say(HIGH_TEXT, "m1")

    # Routing still tells supervisors about the rise to high.
    raised = await sup_ws.expect(
        "alert", alert_about(visitor.session_id, "urgency_raised"), within=10.0
    )
    assert raised["urgency"] == "high"
    assert await stored_urgency(server, visitor.session_id) == 3

    # Past the deadline a clock would have had: no safety message, no handoff.
    with pytest.raises(TimeoutError):
        await visitor.expect(
            "message", lambda f: f["sender"] == "system", within=FAST["handoff_deadline_s"] + 1.0
        )
    assert await handoffs_of(server, visitor.session_id) == []
    assert partner.received == []
    escalation = [
        f
        for f in await sup_ws.drain()
        if f.get("type") == "alert" and f.get("kind") == "escalation"
    ]
    assert not [f for f in escalation if f.get("session_id") == visitor.session_id]
    await sup_ws.close()
    await visitor.close()
