"""The resource library end to end on a live server: an admin adds a resource over REST, a
volunteer searches it and sends it as a card into a chat they hold, the visitor's real socket
receives the card, the transcript keeps it, and the audit log says who did what."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select
from websockets.asyncio.client import connect

from app.chat.models import Message
from app.core.db import transaction
from tests.routing.wsclient import VisitorClient, about

RESOURCE = {
    "title": "Night line",
    "locale": "en-GB",
    "topics": ["Sleep", "anxiety"],
    "levels": ["moderate", "high", "imminent"],
    "phone": "+44 800 123 456",
    "url": "https://example.org/night-line",
    "text": "Trained listeners, every night from 10 pm to 6 am.",
}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_adds_volunteer_sends_visitor_sees_card(
    world_factory: Callable[..., Any],
) -> None:
    # Offers last 10 s: a slow first triage on a loaded machine must not expire it before accept.
    world = await world_factory(offer_timeout_s=10.0)
    admin = await world.volunteer(role="admin", capacity=0)
    helper = await world.volunteer(capacity=2)
    async with httpx.AsyncClient(base_url=world.server.base_url) as http:
        created = await http.post("/v1/admin/resources", json=RESOURCE, headers=_auth(admin.token))
        assert created.status_code == 201, created.text
        resource = created.json()
        rid = resource["id"]
        # Stored as reviewed, normalised only where the wire says so.
        assert resource["locale"] == "en"
        assert resource["topics"] == ["sleep", "anxiety"]
        assert resource["levels"] == ["moderate", "high", "imminent"]
        assert resource["text"] == RESOURCE["text"]
        added = await world.audit(rid, "resource_added")
        assert [(e.actor_type, e.actor_id) for e in added] == [("admin", str(admin.id))]

        # Volunteers search by words, topic, level and locale.
        found = await http.get(
            "/v1/resources",
            params={"q": "night LISTENERS", "topic": "sleep", "level": "high", "locale": "en-US"},
            headers=_auth(helper.token),
        )
        assert found.status_code == 200, found.text
        assert [r["id"] for r in found.json()["resources"]] == [rid]
        for miss in ({"level": "none"}, {"locale": "es"}, {"q": "pills"}, {"topic": "grief"}):
            other = await http.get("/v1/resources", params=miss, headers=_auth(helper.token))
            assert rid not in [r["id"] for r in other.json()["resources"]], miss

        visitor, volunteer = await world.held_chat(
            "I can't sleep and my thoughts keep racing", token=helper.token
        )
        sid = visitor.session_id
        sent = await http.post(
            f"/v1/dashboard/sessions/{sid}/resources",
            json={"resource_id": rid, "client_msg_id": "card-1"},
            headers=_auth(helper.token),
        )
        assert sent.status_code == 200, sent.text
        seq = sent.json()["seq"]

        # The visitor's socket gets the card, with a plain text for clients that know no cards.
        frame = await visitor.expect("message", lambda f: f.get("kind") == "resource")
        assert frame["seq"] == seq
        assert frame["sender"] == "volunteer"
        assert frame["resource"] == {
            "resource_id": rid,
            "title": "Night line",
            "text": RESOURCE["text"],
            "url": RESOURCE["url"],
            "phone": RESOURCE["phone"],
        }
        assert frame["text"].startswith("Night line: Trained listeners")
        # The volunteer's own socket shows it in the chat pane too.
        mine = await volunteer.expect("message", about(sid, kind="resource"))
        assert mine["resource"]["title"] == "Night line"

        # A retry with the same client_msg_id is answered with the first seq, stored once.
        again = await http.post(
            f"/v1/dashboard/sessions/{sid}/resources",
            json={"resource_id": rid, "client_msg_id": "card-1"},
            headers=_auth(helper.token),
        )
        assert again.json()["seq"] == seq
        async with transaction(world.state.sessionmaker) as db:
            cards = (
                await db.scalars(
                    select(Message).where(
                        Message.session_id == uuid.UUID(sid), Message.kind == "resource"
                    )
                )
            ).all()
        assert [m.seq for m in cards] == [seq]
        sent_events = await world.audit(sid, "resource_sent")
        assert [(e.actor_id, e.details) for e in sent_events] == [
            (str(helper.id), {"resource_id": rid, "seq": seq})
        ]

        # Removing the resource changes the library, never a transcript already sent.
        removed = await http.delete(f"/v1/admin/resources/{rid}", headers=_auth(admin.token))
        assert removed.status_code == 204
        assert len(await world.audit(rid, "resource_removed")) == 1
        gone = await http.get("/v1/resources", params={"q": "night"}, headers=_auth(helper.token))
        assert rid not in [r["id"] for r in gone.json()["resources"]]
        detail = await http.get(f"/v1/dashboard/sessions/{sid}", headers=_auth(helper.token))
        card_row = [m for m in detail.json()["transcript"] if m["seq"] == seq]
        assert card_row[0]["kind"] == "resource"
        assert card_row[0]["resource"]["phone"] == RESOURCE["phone"]

        # A visitor who comes back (a new socket, the resume token) gets the card replayed.
        token = next(f["resume_token"] for f in visitor.seen if f["type"] == "session")
        await visitor.ws.close()
        async with connect(f"{world.server.ws_url}/v1/chat") as ws:
            await ws.send(json.dumps({"type": "hello", "resume_token": token, "last_seq": 0}))
            replayed = []
            while not replayed:
                got = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if got["type"] == "message" and got.get("kind") == "resource":
                    replayed.append(got)
        assert replayed[0]["seq"] == seq
        assert replayed[0]["resource"]["resource_id"] == rid
        await volunteer.close()


async def test_resource_refusals_have_stable_codes(world_factory: Callable[..., Any]) -> None:
    world = await world_factory()
    admin = await world.volunteer(role="admin", capacity=0)
    supervisor = await world.volunteer(role="supervisor")
    helper = await world.volunteer()
    async with httpx.AsyncClient(base_url=world.server.base_url) as http:
        # Only admins manage the library (supervisors neither).
        for who in (helper, supervisor):
            refused = await http.post(
                "/v1/admin/resources", json=RESOURCE, headers=_auth(who.token)
            )
            assert (refused.status_code, refused.json()["error"]) == (403, "admins_only")
        anonymous = await http.get("/v1/resources")
        assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")

        bad_bodies: list[dict[str, Any]] = [
            {**RESOURCE, "url": None, "phone": None},  # nowhere to go
            {**RESOURCE, "url": "http://example.org"},  # not https
            {**RESOURCE, "url": "javascript:alert(1)"},
            {**RESOURCE, "phone": "call me"},
            {**RESOURCE, "levels": ["urgent"]},
            {**RESOURCE, "levels": []},
            {**RESOURCE, "locale": "English!"},
            {**RESOURCE, "title": "   "},
            {**RESOURCE, "text": "x" * 501},
            {**RESOURCE, "topics": ["two words"]},
            {**RESOURCE, "surprise": 1},
            {**RESOURCE, "title": "Night \ud800 line"},  # a lone surrogate: not storable
            {**RESOURCE, "text": "nul \u0000 byte"},
            {**RESOURCE, "url": "https://example.org/\udfff"},
        ]
        for body in bad_bodies:
            # json.dumps escapes lone surrogates (httpx's json= cannot encode them).
            bad = await http.post(
                "/v1/admin/resources",
                content=json.dumps(body),
                headers={**_auth(admin.token), "Content-Type": "application/json"},
            )
            assert (bad.status_code, bad.json()["error"]) == (422, "validation_error"), body

        missing = await http.delete(
            f"/v1/admin/resources/{uuid.uuid4()}", headers=_auth(admin.token)
        )
        assert (missing.status_code, missing.json()["error"]) == (404, "resource_not_found")
        locale = await http.get(
            "/v1/resources", params={"locale": "!!"}, headers=_auth(helper.token)
        )
        assert (locale.status_code, locale.json()["error"]) == (422, "invalid_locale")

        created = await http.post("/v1/admin/resources", json=RESOURCE, headers=_auth(admin.token))
        rid = created.json()["id"]
        visitor = await VisitorClient.open(world.server.ws_url)
        await visitor.say("hello?", "v-1")
        # Not held by this volunteer: refused without saying whether the session exists.
        not_mine = await http.post(
            f"/v1/dashboard/sessions/{visitor.session_id}/resources",
            json={"resource_id": rid, "client_msg_id": "c-1"},
            headers=_auth(helper.token),
        )
        assert (not_mine.status_code, not_mine.json()["error"]) == (403, "not_assigned")
        # A supervisor may send into any live chat; an unknown resource is named as such.
        unknown = await http.post(
            f"/v1/dashboard/sessions/{visitor.session_id}/resources",
            json={"resource_id": str(uuid.uuid4()), "client_msg_id": "c-2"},
            headers=_auth(supervisor.token),
        )
        assert (unknown.status_code, unknown.json()["error"]) == (404, "resource_not_found")
        bad_id = await http.post(
            f"/v1/dashboard/sessions/{visitor.session_id}/resources",
            json={"resource_id": rid, "client_msg_id": ""},
            headers=_auth(supervisor.token),
        )
        assert (bad_id.status_code, bad_id.json()["error"]) == (422, "validation_error")
        await visitor.ws.close()
