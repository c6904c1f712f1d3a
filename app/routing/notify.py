"""Turning routing ``Notice``s into bus events, published in the caller's transaction (so they
are delivered only if it commits)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.bus.base import Bus, Event
from app.bus.events import Wake, encode
from app.chat import events as chat_events
from app.chat.models import ChatSession
from app.core.db import utcnow
from app.core.metrics import Metrics
from app.routing.notices import ROUTING_CHANNEL, Notice
from app.triage.types import Level


def to_events(notices: Sequence[Notice]) -> list[Event]:
    events: list[Event] = []
    wake = False
    for notice in notices:
        if notice.channel is not None:
            if notice.frame.get("type") == "wake":
                wake = True
                continue
            events.append((notice.channel, notice.frame))
        if notice.visitor_status is not None:
            # The chat side's own status hint: the visitor's socket turns it into a `status`
            # frame (with queue position), and queue watchers hear it on the queue channel.
            session_id, status = notice.visitor_status
            events.extend(chat_events.status_changed(session_id, status))
    if wake:
        # One wake per transaction is enough: the router re-reads the queue from the database.
        events.append((ROUTING_CHANNEL, encode(Wake())))
    return events


async def publish(bus: Bus, notices: Sequence[Notice], *, db: AsyncSession | None) -> None:
    events = to_events(notices)
    if events:
        await bus.publish_many(events, db=db)


def observe_answered(metrics: Metrics, session: ChatSession) -> None:
    """Wait from joining the queue to a volunteer taking the chat, by urgency (SPEC §11)."""
    waited = max(0.0, (utcnow() - session.waiting_since).total_seconds())
    metrics.wait_seconds.labels(urgency=Level(session.urgency).name).observe(waited)
