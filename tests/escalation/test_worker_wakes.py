"""Which bus hints wake the escalation clock (it sleeps when nothing is open, so a hint it
ignores is work it finds only at its idle cadence): urgent arrivals and rises, a session left
unanswered again, an escalation alert from any instance; not offers, not calm news."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.bus import RESYNC, InProcessBus
from app.bus.events import Queued, StatusChanged, SupervisorAlert, UrgencyRaised, encode
from app.chat.committer import MessageCommitter
from app.core.config import Settings
from app.core.db import create_sessionmaker
from app.core.metrics import Metrics
from app.escalation.worker import EscalationWorker


async def test_what_wakes_the_escalation_clock(
    settings_factory: Callable[..., Settings], engine: AsyncEngine
) -> None:
    sessionmaker = create_sessionmaker(engine)
    bus = InProcessBus()
    metrics = Metrics()
    async with httpx.AsyncClient() as http:
        worker = EscalationWorker(
            sessionmaker=sessionmaker,
            settings=settings_factory(),
            bus=bus,
            committer=MessageCommitter(sessionmaker, bus, metrics),
            metrics=metrics,
            partners=None,
            http=http,
        )
    sid = str(uuid.uuid4())
    # Default policy: imminent escalates, high only alerts supervisors.
    assert worker.wakes_on(encode(Queued(sid, 4)))
    assert worker.wakes_on(encode(UrgencyRaised(sid, 4, 1, 3)))
    assert not worker.wakes_on(encode(Queued(sid, 1)))
    assert not worker.wakes_on(encode(UrgencyRaised(sid, 2, 1, 3)))
    for status in ("waiting", "transferring"):
        assert worker.wakes_on(encode(StatusChanged(sid, status))), status
    for status in ("offered", "active", "closed", "handed_off"):
        assert not worker.wakes_on(encode(StatusChanged(sid, status))), status
    handed = SupervisorAlert("escalation", sid, "imminent", 4, "handoff_connected", {})
    assert worker.wakes_on(encode(handed))
    at_risk = SupervisorAlert("at_risk", sid, "moderate", 2, "visitor_lost", {})
    assert not worker.wakes_on(encode(at_risk))
    assert worker.wakes_on(dict(RESYNC))
