"""`POST /v1/triage?resources=1` on a live server: each result carries the reviewed resources
that suit its level and locale; without the flag the body is the triage contract, unchanged."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import delete

from app.audit.service import Actor
from app.core.db import transaction
from app.partners import service as partners
from app.resources import schemas, service
from app.resources.models import Resource
from tests.conftest import LiveServer

ADMIN = Actor("admin", "test")


async def _setup(server: LiveServer) -> tuple[dict[str, str], dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    async with transaction(server.app.state.beacon.sessionmaker) as db:
        # Runs share one database, and at most 5 resources come back: only this test's count.
        await db.execute(delete(Resource))
        _, key = await partners.create_key(db, name=f"app-{tag}", scopes=["triage"])
        ids = {}
        for name, locale, levels in (
            ("urgent-en", "en", ["high", "imminent"]),
            ("calm-en", "en", ["none", "low"]),
            ("urgent-es", "es", ["high", "imminent"]),
        ):
            row = await service.add(
                db,
                schemas.ResourceIn(
                    title=f"{name} {tag}",
                    locale=locale,
                    levels=levels,
                    phone="+1 555 0100",
                    text="Reviewed text.",
                ),
                actor=ADMIN,
            )
            ids[name] = str(row.id)
    return {"Authorization": f"Bearer {key}"}, ids


def _ids(result: dict[str, Any]) -> set[str]:
    return {r["id"] for r in result["resources"]}


async def test_triage_returns_suited_resources(live_server: LiveServer) -> None:
    headers, ids = await _setup(live_server)
    ours = set(ids.values())
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=headers) as http:
        plain = await http.post("/v1/triage", json={"text": "I have the pills right here"})
        assert plain.status_code == 200
        assert "resources" not in plain.json()

        urgent = await http.post(
            "/v1/triage", params={"resources": "1"}, json={"text": "I have the pills right here"}
        )
        assert urgent.status_code == 200, urgent.text
        body = urgent.json()
        assert body["level_value"] >= 3
        assert _ids(body) & ours == {ids["urgent-en"]}
        card = next(r for r in body["resources"] if r["id"] == ids["urgent-en"])
        assert card["phone"] == "+1 555 0100"
        assert card["levels"] == ["high", "imminent"]

        # The locale asked for wins; a batch gets resources per item, each for its own level.
        batch = await http.post(
            "/v1/triage",
            params={"resources": "1", "locale": "es-MX"},
            json={
                "items": [{"text": "I have the pills right here"}, {"text": "what a lovely day"}]
            },
        )
        assert batch.status_code == 200, batch.text
        first, second = batch.json()["items"]
        assert _ids(first) & ours == {ids["urgent-es"]}
        assert second["level_value"] <= 1
        assert _ids(second) & ours == set()

        calm = await http.post(
            "/v1/triage", params={"resources": "1"}, json={"text": "what a lovely day"}
        )
        assert calm.json()["level_value"] <= 1
        assert _ids(calm.json()) & ours == {ids["calm-en"]}

        # A replay repeats the stored triage result and shows the library as it is now.
        key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        once = await http.post(
            "/v1/triage", params={"resources": "1"}, json={"text": "I took 30 pills"}, headers=key
        )
        async with transaction(live_server.app.state.beacon.sessionmaker) as db:
            await service.remove(db, uuid.UUID(ids["urgent-en"]), actor=ADMIN)
        twice = await http.post(
            "/v1/triage", params={"resources": "1"}, json={"text": "I took 30 pills"}, headers=key
        )
        assert twice.headers["Idempotent-Replayed"] == "true"
        assert {k: v for k, v in twice.json().items() if k != "resources"} == {
            k: v for k, v in once.json().items() if k != "resources"
        }
        assert ids["urgent-en"] in _ids(once.json())
        assert ids["urgent-en"] not in _ids(twice.json())

        for params in ({"resources": "yes"}, {"resources": "1", "locale": "!!"}):
            bad = await http.post("/v1/triage", params=params, json={"text": "hello"})
            assert (bad.status_code, bad.json()["error"]) == (422, "invalid_query"), params
