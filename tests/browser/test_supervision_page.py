"""The dashboard's supervision buttons in real headless Chromium (issue 14): a supervisor
observes a live chat, whispers, joins and mutes; the visitor and the volunteer are real
`websockets` clients on the same uvicorn, and the audit trail is checked afterwards."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import select

from app.audit.models import Event
from app.core.db import transaction
from app.routing.models import Volunteer
from tests.browser.test_pages import (  # noqa: F401 - fixtures
    Restartable,
    _account,
    browser_tools,
    run_script,
    served,
)
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

SAID = "everything feels like too much today"
NOTE = "ask what helped last time"
# Rated exactly `high` (tests/escalation/conftest.py): a mute then needs a second supervisor.
HIGH = "I have been thinking about taking all my pills"


async def _held_chat(server: Restartable, said: str) -> tuple[VisitorClient, VolunteerClient]:
    """A visitor who said ``said`` and a volunteer (real sockets) who accepted the chat."""
    ws_url = server.base_url.replace("http://", "ws://")
    volunteer = await _account(server, "volunteer")
    visitor = await VisitorClient.open(ws_url)
    await visitor.say(said, "b-1")
    holder = await VolunteerClient.connect(ws_url, volunteer["token"])
    await holder.expect("offer", about(visitor.session_id), within=30)
    await holder.send({"type": "accept", "session_id": visitor.session_id})
    await holder.expect("assigned", about(visitor.session_id))
    return visitor, holder


async def _actions(server: Restartable, session_id: str) -> set[tuple[str, str | None]]:
    """The session's audit trail as (action, actor id) pairs."""
    async with transaction(server.state.sessionmaker) as db:
        events = await db.scalars(
            select(Event).where(Event.subject_id == str(uuid.UUID(session_id)))
        )
        return {(e.action, e.actor_id) for e in events.all()}


async def test_supervisor_observes_whispers_joins_and_mutes(
    served: Restartable,  # noqa: F811 - the fixture imported above
) -> None:
    supervisor = await _account(served, "supervisor")
    visitor, holder = await _held_chat(served, SAID)

    result = await run_script(
        served,
        "supervise.mjs",
        {
            "BEACON_SUPERVISOR_TOKEN": supervisor["token"],
            "BEACON_SESSION_ID": visitor.session_id,
            "BEACON_VISITOR_SAID": SAID,
            "BEACON_WHISPER": NOTE,
        },
    )
    assert all(a["serious"] == 0 for a in result["axe"]), result["axe"]

    heard = await holder.expect("whisper", about(visitor.session_id), within=10)
    assert heard["text"] == NOTE
    assert heard["author_id"] == supervisor["id"]
    await holder.expect("session", about(visitor.session_id, muted=True), within=10)
    line = await visitor.expect("message", lambda f: f.get("kind") == "supervisor_join")
    assert line["sender"] == "system"
    assert NOTE not in [f.get("text") for f in visitor.seen]
    actions = await _actions(served, visitor.session_id)
    for action in ("supervision_observe_started", "whisper_sent", "supervisor_joined"):
        assert (action, supervisor["id"]) in actions, action
    assert ("session_muted", supervisor["id"]) in actions
    assert ("mute_lifted", supervisor["id"]) in actions
    unmuted = await holder.expect("session", about(visitor.session_id, muted=False), within=10)
    assert unmuted["session_id"] == visitor.session_id
    for client in (visitor, holder):
        await client.close()


async def test_a_second_supervisor_confirms_a_high_chat_s_mute_from_the_alert(
    served: Restartable,  # noqa: F811 - the fixture imported above
) -> None:
    first = await _account(served, "supervisor")
    second = await _account(served, "supervisor")
    visitor, holder = await _held_chat(served, HIGH)

    async def ask_once_the_page_is_signed_in() -> None:
        # The page hears alerts only once its socket is open: wait for it to be online.
        for _ in range(600):
            async with transaction(served.state.sessionmaker) as db:
                presence = await db.scalar(
                    select(Volunteer.presence).where(Volunteer.id == uuid.UUID(second["id"]))
                )
            if presence == "online":
                break
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            asked = await http.post(
                f"/v1/dashboard/sessions/{visitor.session_id}/mute",
                json={"duration_s": 600, "reason": "abusive messages"},
                headers={"Authorization": f"Bearer {first['token']}"},
            )
        assert asked.status_code == 200, asked.text
        assert asked.json()["status"] == "requested"

    result, _ = await asyncio.gather(
        run_script(
            served,
            "confirm_mute.mjs",
            {"BEACON_SUPERVISOR_TOKEN": second["token"], "BEACON_SESSION_ID": visitor.session_id},
        ),
        ask_once_the_page_is_signed_in(),
    )
    assert all(a["serious"] == 0 for a in result["axe"]), result["axe"]
    await holder.expect("session", about(visitor.session_id, muted=True), within=10)
    actions = await _actions(served, visitor.session_id)
    assert ("mute_requested", first["id"]) in actions
    assert ("mute_confirmed", second["id"]) in actions
    for client in (visitor, holder):
        await client.close()
