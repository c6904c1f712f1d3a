from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat.models import ChatSession
from app.core.db import create_sessionmaker, transaction
from app.escalation.models import OPEN_HANDOFF_STATUSES, Handoff
from app.routing.accounts import IssuedAccount, create_volunteer
from tests.conftest import LiveServer, free_port
from tests.escalation.partner_server import PartnerServer
from tests.routing.conftest import end_live_work

# The triage engine rates this `imminent` (`beacon triage "..."`): the end-to-end tests run the
# default policy (`escalate_high` off) with only the imminent deadline shortened, and assert the
# level the server recorded.
URGENT_TEXT = "I took 30 pills just now and I want to kill myself"
# Rated exactly `high`: escalates only when BEACON_ESCALATE_HIGH is on.
HIGH_TEXT = "I have been thinking about taking all my pills"

FAST: dict[str, Any] = {
    "handoff_deadline_s": 1.5,
    "escalation_tick_s": 0.05,
    "handoff_retry_base_s": 0.1,
    "handoff_retry_max_s": 0.3,
    "handoff_request_timeout_s": 1.0,
    "handoff_delivery_deadline_s": 3.0,
    "handoff_breaker_threshold": 5,
    "handoff_breaker_cooldown_s": 1.0,
    "routing_interval_s": 0.1,
    "ws_rate_limit_per_s": 100.0,
    "ws_rate_limit_burst": 100,
}


@pytest.fixture
async def partner_factory() -> AsyncIterator[Callable[..., Any]]:
    servers: list[PartnerServer] = []

    async def make(name: str = "lifeline", **kwargs: Any) -> PartnerServer:
        server = PartnerServer(name=name, secret=secrets.token_hex(16), port=free_port(), **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


def write_partners(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / f"partners-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps({"partners": list(entries)}))
    return path


async def clean_slate(engine: AsyncEngine) -> None:
    """Runs share one database: end whatever earlier tests left live, so that this test's
    escalation clock and router see only this test's people. Call it before starting servers."""
    async with transaction(create_sessionmaker(engine)) as db:
        await db.execute(
            update(Handoff)
            .where(Handoff.status.in_(OPEN_HANDOFF_STATUSES))
            .values(status="cancelled", notice_due=None)
        )
        await end_live_work(db)


async def supervisor(server: LiveServer) -> IssuedAccount:
    """A supervisor with no chat capacity: alerted, never offered the session."""
    return await volunteer_account(server, role="supervisor", capacity=0)


async def stored_urgency(server: LiveServer, session_id: str) -> int | None:
    async with transaction(server.app.state.beacon.sessionmaker) as db:
        return await db.scalar(
            select(ChatSession.urgency).where(ChatSession.id == uuid.UUID(session_id))
        )


@pytest.fixture
def partnered_server(
    engine: AsyncEngine,
    tmp_path: Path,
    partner_factory: Callable[..., Any],
    live_server_factory: Callable[..., Any],
) -> Callable[..., Any]:
    """A clean slate, one partner and a live server that knows it, with the FAST clocks unless
    the test overrides them: the setup every end-to-end escalation test starts from."""

    async def start(name: str, **overrides: Any) -> tuple[PartnerServer, LiveServer]:
        await clean_slate(engine)
        partner: PartnerServer = await partner_factory(name)
        server: LiveServer = await live_server_factory(
            **{**FAST, **overrides}, partners_file=write_partners(tmp_path, partner.config_entry())
        )
        return partner, server

    return start


async def volunteer_account(
    server: LiveServer, role: str = "volunteer", capacity: int = 1
) -> IssuedAccount:
    async with transaction(server.app.state.beacon.sessionmaker) as db:
        return await create_volunteer(
            db,
            name=f"{role}-{secrets.token_hex(3)}",
            role=role,
            capacity=capacity,
            token_ttl_s=3600,
        )


def is_safety(frame: dict[str, Any]) -> bool:
    return frame["sender"] == "system" and frame.get("kind") == "safety"


def alert_about(session_id: str, reason: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("session_id") == session_id and f.get("reason") == reason


async def handoffs_of(server: LiveServer, session_id: str) -> list[Handoff]:
    """Every handoff of the session, oldest first."""
    async with transaction(server.app.state.beacon.sessionmaker) as db:
        return list(
            (
                await db.scalars(
                    select(Handoff)
                    .where(Handoff.session_id == uuid.UUID(session_id))
                    .order_by(Handoff.created_at)
                )
            ).all()
        )
