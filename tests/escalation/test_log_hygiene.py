"""SPEC: logs carry ids and codes, never message text or tokens. A whole chat on a real server -
visitor, volunteer reply, a turn to imminent, the partner POST - with every log line captured."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.escalation.conftest import URGENT_TEXT, is_safety, volunteer_account
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

VISITOR_TEXT = "zorblat my flatmate quintessence"
VOLUNTEER_TEXT = "I hear you, glimmerfax, tell me more"


async def test_a_whole_chat_logs_no_text_and_no_tokens(
    partnered_server: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    partner, server = await partnered_server("logline")
    account = await volunteer_account(server)
    with capture_logs() as logs, caplog.at_level(logging.DEBUG):
        volunteer = await VolunteerClient.connect(server.ws_url, account.token)
        visitor = await VisitorClient.open(server.ws_url, locale="en-GB")
        sid = visitor.session_id
        await visitor.say(VISITOR_TEXT, "m1")
        await volunteer.expect("offer", about(sid), within=10.0)
        await volunteer.send({"type": "accept", "session_id": sid})
        await volunteer.expect("assigned", about(sid))
        await volunteer.send(
            {"type": "message", "session_id": sid, "client_msg_id": "v1", "text": VOLUNTEER_TEXT}
        )
        await visitor.expect("message", lambda f: f.get("text") == VOLUNTEER_TEXT, within=10.0)
        await visitor.say(URGENT_TEXT, "m2")
        await visitor.expect("message", is_safety, within=10.0)
        await volunteer.send({"type": "handoff", "session_id": sid})
        await partner.wait_for(1, within=10.0)
        await visitor.close()
        await volunteer.close()

    [session] = [f for f in visitor.seen if f.get("type") == "session"]
    # The capture saw the server at work, so an empty capture cannot pass for a clean one.
    assert "volunteer_connected" in [e["event"] for e in logs]
    captured = repr(logs) + caplog.text
    for secret in (
        VISITOR_TEXT,
        "zorblat",
        "glimmerfax",
        URGENT_TEXT,
        "pills",
        session["resume_token"],
        account.token,
        partner.secret,
    ):
        assert secret not in captured, secret
