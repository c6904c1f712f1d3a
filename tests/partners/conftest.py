"""Partner API fixtures: keys in the test's transaction or committed, and clients on apps with
overridden settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.core.config import Settings
from app.core.db import create_sessionmaker, transaction
from app.main import create_app
from app.partners import service
from app.routers.deps import get_db
from tests.conftest import shared_triage


@dataclass(frozen=True)
class Key:
    id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


KeyFactory = Callable[..., Awaitable[Key]]


def unique_name(label: str = "partner") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_key(db: AsyncSession) -> KeyFactory:
    """A key inside the test's transaction: visible to ``client`` requests, rolled back after."""

    async def make(
        *, scopes: Sequence[str] = ("triage",), rate_limit_per_min: int | None = None
    ) -> Key:
        row, token = await service.create_key(
            db, name=unique_name(), scopes=scopes, rate_limit_per_min=rate_limit_per_min
        )
        await db.flush()
        return Key(row.id, token)

    return make


@pytest.fixture
def make_committed_key(engine: AsyncEngine) -> KeyFactory:
    """A key committed to the run's database, for live servers and concurrent connections."""

    async def make(
        *, scopes: Sequence[str] = ("triage",), rate_limit_per_min: int | None = None
    ) -> Key:
        async with transaction(create_sessionmaker(engine)) as db:
            row, token = await service.create_key(
                db, name=unique_name(), scopes=scopes, rate_limit_per_min=rate_limit_per_min
            )
        return Key(row.id, token)

    return make


ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def client_factory(
    settings_factory: Callable[..., Settings], connection: AsyncConnection
) -> AsyncIterator[ClientFactory]:
    """Like the shared ``client`` fixture, on an app built with overridden settings."""
    apps: list[tuple[FastAPI, Any, httpx.AsyncClient]] = []

    async def test_db() -> AsyncIterator[AsyncSession]:
        session = AsyncSession(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            async with session.begin():
                yield session
        finally:
            await session.close()

    async def make(**overrides: Any) -> httpx.AsyncClient:
        app = create_app(settings_factory(**overrides), triage=shared_triage)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        app.dependency_overrides[get_db] = test_db
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://beacon.test")
        apps.append((app, lifespan, client))
        return client

    yield make
    for _app, lifespan, client in reversed(apps):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
