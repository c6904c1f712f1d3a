"""Visitor erasure over HTTP (`DELETE /v1/chat/sessions/{id}` with the resume token) on a live
server: a chat with messages both ways and a resource card is erased while the visitor's
socket is open; the socket is told and closed, every text is gone, the token stops working,
and the audit keeps only that it happened."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select
from websockets.asyncio.client import connect

from app.audit.models import Event
from app.chat.models import Message
from app.core.db import transaction
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

SECRET_WORDS = "my neighbour's name is Zebulon"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_http_erasure_end_to_end(world_factory: Callable[..., Any]) -> None:
    world = await world_factory(offer_timeout_s=10.0)
    admin = await world.volunteer(role="admin", capacity=0)
    helper = await world.volunteer()
    visitor = await VisitorClient.open(world.server.ws_url)
    sid = visitor.session_id
    token = str(next(f["resume_token"] for f in visitor.seen if f["type"] == "session"))
    await visitor.say(SECRET_WORDS, "v-1")
    volunteer = await VolunteerClient.connect(world.server.ws_url, helper.token)
    await volunteer.expect("offer", about(sid))
    await volunteer.send({"type": "accept", "session_id": sid})
    await volunteer.expect("assigned", about(sid))
    await volunteer.send(
        {"type": "message", "session_id": sid, "client_msg_id": "r-1", "text": "I'm here."}
    )
    await volunteer.expect("ack", about(sid, client_msg_id="r-1"))
    async with httpx.AsyncClient(base_url=world.server.base_url) as http:
        resource = await http.post(
            "/v1/admin/resources",
            json={"title": "Line", "locale": "en", "phone": "+1 555 0100", "text": "Call us."},
            headers=_bearer(admin.token),
        )
        card = await http.post(
            f"/v1/dashboard/sessions/{sid}/resources",
            json={"resource_id": resource.json()["id"], "client_msg_id": "c-1"},
            headers=_bearer(helper.token),
        )
        assert card.status_code == 200, card.text
        await visitor.expect("message", lambda f: f.get("kind") == "resource")

        wrong = await http.delete(f"/v1/chat/sessions/{sid}", headers=_bearer("nope"))
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_resume_token")
        other = await http.delete(f"/v1/chat/sessions/{uuid.uuid4()}", headers=_bearer(token))
        assert (other.status_code, other.json()["error"]) == (401, "invalid_resume_token")
        bare = await http.delete(f"/v1/chat/sessions/{sid}")
        assert (bare.status_code, bare.json()["error"]) == (401, "invalid_resume_token")

        erased = await http.delete(f"/v1/chat/sessions/{sid}", headers=_bearer(token))
        assert erased.status_code == 204, erased.text

        # The open visitor socket hears that the chat ended, erased.
        closed = await visitor.expect("status", lambda f: f["status"] == "closed")
        assert closed.get("reason") == "erased"
        # The volunteer lets go of it.
        await volunteer.expect("session", about(sid, status="closed"))

        again = await http.delete(f"/v1/chat/sessions/{sid}", headers=_bearer(token))
        assert (again.status_code, again.json()["error"]) == (401, "invalid_resume_token")
        survey = await http.post(
            f"/v1/chat/sessions/{sid}/survey", json={"helped": 3}, headers=_bearer(token)
        )
        assert (survey.status_code, survey.json()["error"]) == (401, "invalid_resume_token")

    # Resuming with the token is refused too.
    async with connect(f"{world.server.ws_url}/v1/chat") as ws:
        await ws.send(f'{{"type":"hello","resume_token":"{token}","last_seq":0}}')
        refused = await ws.recv()
        assert "invalid_resume_token" in str(refused)

    async with transaction(world.state.sessionmaker) as db:
        texts = (
            await db.scalars(select(Message.text).where(Message.session_id == uuid.UUID(sid)))
        ).all()
        trail = (
            await db.scalars(select(Event).where(Event.subject_id == sid).order_by(Event.id))
        ).all()
    assert len(texts) >= 3
    assert set(texts) == {None}  # the card went with the texts
    erasures = [e for e in trail if e.action == "transcript_erased"]
    assert [(e.actor_type, e.details) for e in erasures] == [("visitor", {"messages": len(texts)})]
    # Nothing the visitor wrote survives anywhere in the audit trail.
    assert "Zebulon" not in repr([(e.action, e.details) for e in trail])
    await volunteer.close()
    await visitor.ws.close()
