"""Which bus hints wake the routing pass: everything that may make an offer possible, not the
`offered` status that every offer itself announces (a pass for it re-reads what it just did)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from app.bus import RESYNC, InProcessBus
from app.bus.events import Queued, StatusChanged, UrgencyRaised, Wake, encode
from app.chat import events as chat_events
from app.core.config import Settings
from app.core.db import create_sessionmaker
from app.core.metrics import Metrics
from app.routing.worker import RoutingWorker


def test_an_offer_does_not_wake_the_router_but_everything_else_does(
    settings_factory: Callable[..., Settings], engine: AsyncEngine
) -> None:
    worker = RoutingWorker(
        sessionmaker=create_sessionmaker(engine),
        settings=settings_factory(),
        bus=InProcessBus(),
        metrics=Metrics(),
    )
    sid = str(uuid.uuid4())
    assert not worker.wakes_on(encode(StatusChanged(sid, "offered")))
    for status in ("waiting", "active", "closed", "handed_off", "abandoned"):
        assert worker.wakes_on(encode(StatusChanged(sid, status))), status
    assert worker.wakes_on(encode(Queued(sid, 0)))
    assert worker.wakes_on(encode(UrgencyRaised(sid, 4, 0, 2)))
    assert worker.wakes_on(encode(Wake()))
    assert worker.wakes_on(dict(RESYNC))
    # What the chat side really publishes for an offer (session and queue channels).
    for _, payload in chat_events.status_changed(uuid.UUID(sid), "offered"):
        assert not worker.wakes_on(payload)
