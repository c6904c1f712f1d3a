"""How the pages and their files are served (headers, types, caching, refusals), and the
visitor page's safety contacts. The pages' behaviour is tested in Chromium (tests/browser)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.escalation.contacts import diallable
from app.main import create_app
from app.web import STATIC_DIR
from tests.conftest import shared_triage

PAGES = {"/chat": "chat.html", "/dashboard": "dashboard.html"}


async def test_pages_are_served_with_a_strict_policy_and_never_cached(
    client: httpx.AsyncClient,
) -> None:
    for path, name in PAGES.items():
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.content == (STATIC_DIR / name).read_bytes()
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert "connect-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_every_file_the_pages_load_is_served_with_its_type(
    client: httpx.AsyncClient,
) -> None:
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    files = sorted(p for p in STATIC_DIR.iterdir() if p.suffix in types)
    assert {p.name for p in files} >= {"chat.js", "common.js", "dashboard.js", "words.js"}
    for path in files:
        response = await client.get(f"/static/{path.name}")
        assert response.status_code == 200, path.name
        assert response.headers["content-type"].startswith(types[path.suffix])
        assert response.headers["cache-control"] == "no-cache"
        assert "content-security-policy" in response.headers
        assert response.content == path.read_bytes()


async def test_an_unchanged_file_is_revalidated_with_304(client: httpx.AsyncClient) -> None:
    first = await client.get("/static/chat.js")
    etag = first.headers["etag"]
    again = await client.get("/static/chat.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    stale = await client.get("/static/chat.js", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


@pytest.mark.parametrize(
    "name",
    ["missing.js", "chat.html", "..%2F__init__.py", "__init__.py", "chat.js.map", ".hidden.js"],
)
async def test_only_page_files_are_served(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/static/{name}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_pages_answer_head(client: httpx.AsyncClient) -> None:
    response = await client.head("/chat")
    assert response.status_code == 200
    assert response.content == b""


@pytest.fixture
async def app_with_partner(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[FastAPI]:
    partners = tmp_path / "partners.json"
    line = {
        "name": "lifeline",
        "url": "https://partner.example/hook",
        "secret": "s" * 20,
        "phone": "+1 (555) 010-0",
        "locales": ["en"],
        "levels": ["high", "imminent"],
    }
    partners.write_text(json.dumps({"partners": [line]}))
    app = create_app(settings_factory(partners_file=partners), triage=shared_triage)
    async with app.router.lifespan_context(app):
        yield app


async def test_safety_contacts_follow_the_locale(app_with_partner: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app_with_partner)
    async with httpx.AsyncClient(transport=transport, base_url="http://beacon.test") as c:
        gb = (await c.get("/v1/chat/safety", params={"locale": "en-GB"})).json()
        plain = (await c.get("/v1/chat/safety")).json()
        spanish = (await c.get("/v1/chat/safety", params={"locale": "es-MX"})).json()
        bad = await c.get("/v1/chat/safety", params={"locale": "<script>"})
    assert gb["emergency"] == {"label": "999", "tel": "999"}
    # Only the partner's public name and number, as a dialler wants it; never its URL or secret.
    assert gb["hotlines"] == [{"name": "lifeline", "phone": "+1 (555) 010-0", "tel": "+15550100"}]
    assert "secret" not in json.dumps(gb)
    assert "partner.example" not in json.dumps(gb)
    # No region: a wording, and no tel: link to a number nobody knows.
    assert plain["emergency"]["tel"] is None
    assert plain["emergency"]["label"] == "your local emergency number"
    assert spanish["locale"] == "es"
    # The only partner is the fallback: a Spanish speaker still gets a line to call.
    assert [h["name"] for h in spanish["hotlines"]] == ["lifeline"]
    assert bad.status_code == 422
    assert bad.json()["error"] == "validation_error"


async def test_safety_contacts_without_partners(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/chat/safety", params={"locale": "en-US"})).json()
    assert body == {
        "locale": "en",
        "emergency": {"label": "911", "tel": "911"},
        "hotlines": [],
    }


@pytest.mark.parametrize(
    ("text", "tel"),
    [("988", "988"), ("+44 116 123", "+44116123"), ("your local emergency number", None)],
)
def test_diallable(text: str, tel: str | None) -> None:
    assert diallable(text) == tel
