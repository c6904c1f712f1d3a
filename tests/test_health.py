from __future__ import annotations

import httpx
import pytest

from app.core.migrate import head_revision
from tests.conftest import LiveServer


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
