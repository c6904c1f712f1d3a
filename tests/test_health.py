from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command

from app.core.migrate import alembic_config, head_revision
from app.main import create_app
from tests.conftest import LiveServer, shared_triage


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_head_revision(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "postgresql"
    assert body["revision"] == head_revision()


async def test_readyz_is_503_when_migrations_are_behind_head(
    tmp_path: Path, settings_factory: Callable[..., Any]
) -> None:
    """A database one real migration behind head: reachable, but not ready for this code."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}"
    app = create_app(settings_factory(database_url=url), triage=shared_triage)
    async with app.router.lifespan_context(app):  # SQLite start brings the file to head
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://beacon.test") as c:
            assert (await c.get("/readyz")).status_code == 200
            await asyncio.to_thread(command.downgrade, alembic_config(url), "-1")
            response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"
    assert "migrations not at head" in response.json()["detail"]


async def test_unknown_route_has_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_metrics_exposes_prometheus_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "beacon_queue_depth" in response.text


@pytest.mark.timeout(60)
async def test_live_server_serves_healthz(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as c:
        response = await c.get("/healthz")
    assert response.status_code == 200


async def test_start_up_moves_what_it_built_out_of_the_collector_s_way(
    settings_factory: Callable[..., Any],
) -> None:
    """A full collection over the start-up objects (the triage model, the mappers) took ~100 ms
    of event-loop pause: after start-up they are frozen, and a full collection walks none."""
    app = create_app(settings_factory(gc_freeze=True), triage=shared_triage)
    try:
        async with app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
            assert frozen > 10_000
            gc.collect()
            assert gc.get_freeze_count() == frozen  # a collection leaves them where they are
    finally:
        gc.unfreeze()  # this test process builds many more apps
