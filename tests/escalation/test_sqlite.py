"""The embedded SQLite default runs the same escalation path (single process)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.escalation.conftest import FAST, URGENT_TEXT, stored_urgency, write_partners
from tests.escalation.partner_server import PartnerServer
from tests.routing.wsclient import VisitorClient


async def test_escalation_and_handoff_on_sqlite(
    tmp_path: Path,
    partner_factory: Callable[..., Any],
    live_server_factory: Callable[..., Any],
) -> None:
    partner: PartnerServer = await partner_factory("sqliteline")
    partner.script.extend(["fail"])
    server = await live_server_factory(
        **FAST,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'beacon.db'}",
        partners_file=write_partners(tmp_path, partner.config_entry()),
    )
    visitor = await VisitorClient.open(server.ws_url)
    await visitor.say(URGENT_TEXT, "m1")
    safety = await visitor.expect("message", lambda f: f.get("kind") == "safety", within=10.0)
    assert partner.phone in safety["text"]
    assert await stored_urgency(server, visitor.session_id) == 4  # imminent, default policy
    received = await partner.wait_for(2, within=10.0)
    assert received[0].payload["urgency"] == "imminent"
    assert [r.answered for r in received] == ["fail", "ok"]
    assert received[0].headers["idempotency-key"] == received[1].headers["idempotency-key"]
    handoff_id = received[0].headers["idempotency-key"]
    response = await partner.call_back(server.base_url, handoff_id, "accepted")
    assert response.status_code == 200, response.text
    await visitor.expect("status", lambda f: f["status"] == "handed_off", within=10.0)
    await visitor.close()
