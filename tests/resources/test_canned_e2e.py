"""Canned replies on a live server: an admin saves snippets with placeholders, a volunteer lists
them filled for themselves and the locale's hotline, sends one over the volunteer socket, and
the visitor's socket receives exactly the filled text."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from app.audit.models import Event
from app.core.db import transaction
from tests.ops.test_cli import beacon
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

PARTNER = {
    "name": "Linea Calma",
    "url": "http://127.0.0.1:9/never",
    "secret": "canned-secret-0123456789",
    "phone": "+34 900 100 200",
    "locales": ["es"],
    "levels": ["high", "imminent"],
    "fallback": True,
}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_saves_volunteer_lists_filled_and_sends(
    world_factory: Callable[..., Any], tmp_path: Path
) -> None:
    partners = tmp_path / "partners.json"
    partners.write_text(json.dumps({"partners": [PARTNER]}))
    world = await world_factory(offer_timeout_s=10.0, partners_file=str(partners))
    admin = await world.volunteer(role="admin", capacity=0)
    name = f"Ana-{uuid.uuid4().hex[:4]}"
    helper = await world.volunteer(name=name, languages=["es", "en"])
    tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=world.server.base_url) as http:
        snippet = {
            "locale": "es",
            "title": f"Presentarse {tag}",
            "text": "Hola, soy {volunteer_name}. Si lo necesitas, llama a {hotline_name}: "
            "{hotline}.",
        }
        created = await http.post(
            "/v1/admin/canned-replies", json=snippet, headers=_auth(admin.token)
        )
        assert created.status_code == 201, created.text
        reply = created.json()
        assert reply["placeholders"] == ["volunteer_name", "hotline_name", "hotline"]
        added = (
            await http.post(
                "/v1/admin/canned-replies",
                json={"locale": "en", "title": f"Hello {tag}", "text": "Hi, I'm {volunteer_name}."},
                headers=_auth(admin.token),
            )
        ).json()

        for text, code in (
            ("Hola {visitor_name}", "unknown_placeholder"),  # visitors are anonymous
            ("Hola {volunteer_name!r}", "unknown_placeholder"),
            ("Hola {", "unknown_placeholder"),
            ("Hola {0}", "unknown_placeholder"),
            ("   ", "validation_error"),
            ("Hola \ud800", "validation_error"),  # lone surrogate: Postgres cannot store it
            ("Hola \u0000", "validation_error"),
        ):
            bad = await http.post(
                "/v1/admin/canned-replies",
                # json.dumps escapes lone surrogates (httpx's json= cannot encode them).
                content=json.dumps({**snippet, "text": text}),
                headers={**_auth(admin.token), "Content-Type": "application/json"},
            )
            assert (bad.status_code, bad.json()["error"]) == (422, code), text
        refused = await http.post(
            "/v1/admin/canned-replies", json=snippet, headers=_auth(helper.token)
        )
        assert (refused.status_code, refused.json()["error"]) == (403, "admins_only")

        # The volunteer's first language by default; filled on the server, for them.
        mine = await http.get("/v1/canned-replies", headers=_auth(helper.token))
        assert mine.status_code == 200, mine.text
        listing = mine.json()
        assert set(listing["placeholders"]) == {
            "volunteer_name",
            "hotline",
            "hotline_name",
            "emergency",
        }
        ours = [r for r in listing["replies"] if r["id"] == reply["id"]]
        assert ours[0]["filled"] == (
            f"Hola, soy {name}. Si lo necesitas, llama a Linea Calma: +34 900 100 200."
        )
        assert ours[0]["text"] == snippet["text"]
        assert added["id"] not in [r["id"] for r in listing["replies"]]
        english = await http.get(
            "/v1/canned-replies", params={"locale": "en-GB"}, headers=_auth(helper.token)
        )
        assert added["id"] in [r["id"] for r in english.json()["replies"]]
        bad_locale = await http.get(
            "/v1/canned-replies", params={"locale": "12"}, headers=_auth(helper.token)
        )
        assert (bad_locale.status_code, bad_locale.json()["error"]) == (422, "invalid_locale")

        # Sent as an ordinary message: the visitor reads exactly the filled text.
        visitor = await VisitorClient.open(world.server.ws_url, locale="es")
        await visitor.say("no puedo dormir", "v-1")
        volunteer = await VolunteerClient.connect(world.server.ws_url, helper.token)
        offer = await volunteer.expect("offer", about(visitor.session_id))
        await volunteer.send({"type": "accept", "session_id": offer["session_id"]})
        await volunteer.expect("assigned", about(visitor.session_id))
        await volunteer.send(
            {
                "type": "message",
                "session_id": visitor.session_id,
                "client_msg_id": "canned-1",
                "text": ours[0]["filled"],
            }
        )
        await volunteer.expect("ack", about(visitor.session_id, client_msg_id="canned-1"))
        heard = await visitor.expect("message", lambda f: f["sender"] == "volunteer")
        assert heard["text"] == ours[0]["filled"]

        gone = await http.delete(
            f"/v1/admin/canned-replies/{reply['id']}", headers=_auth(admin.token)
        )
        assert gone.status_code == 204
        again = await http.delete(
            f"/v1/admin/canned-replies/{reply['id']}", headers=_auth(admin.token)
        )
        assert (again.status_code, again.json()["error"]) == (404, "canned_reply_not_found")
        await visitor.ws.close()
        await volunteer.close()

    async with transaction(world.state.sessionmaker) as db:
        trail = (
            await db.scalars(
                select(Event).where(Event.subject_id == reply["id"]).order_by(Event.id)
            )
        ).all()
    assert [(e.action, e.actor_id) for e in trail] == [
        ("canned_reply_added", str(admin.id)),
        ("canned_reply_removed", str(admin.id)),
    ]


async def test_canned_cli(database_url: str) -> None:
    title = f"Breathe {uuid.uuid4().hex[:6]}"
    text = "Let's breathe together. If you are in danger, call {emergency}."
    added = await asyncio.to_thread(
        beacon,
        "canned",
        "add",
        "--locale",
        "en",
        "--title",
        title,
        "--text",
        text,
        database_url=database_url,
    )
    assert added.returncode == 0, added.stderr
    row = json.loads(added.stdout)
    assert (row["title"], row["placeholders"]) == (title, ["emergency"])
    listed = await asyncio.to_thread(
        beacon, "canned", "list", "--locale", "en", database_url=database_url
    )
    assert row["id"] in [r["id"] for r in json.loads(listed.stdout)["replies"]]
    bad = await asyncio.to_thread(
        beacon,
        "canned",
        "add",
        "--locale",
        "en",
        "--title",
        "x",
        "--text",
        "{hotline_number}",
        database_url=database_url,
    )
    assert bad.returncode == 1
    assert json.loads(bad.stderr)["error"] == "unknown_placeholder"
    removed = await asyncio.to_thread(
        beacon, "canned", "remove", row["id"], database_url=database_url
    )
    assert removed.returncode == 0, removed.stderr
