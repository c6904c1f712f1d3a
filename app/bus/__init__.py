"""Publish/subscribe between connections and instances (SPEC §8), behind one small interface.

``bus.publish(channel, payload, db=None)`` / ``bus.subscribe(channel)`` (an async iterator).
Payloads are small JSON hints with ids and sequence numbers; receivers load content from the
database. Pick the implementation with :func:`create_bus`: Postgres LISTEN/NOTIFY across
instances, or in-process for the embedded SQLite default.

Channels used so far (see app/chat/events.py for payloads):

* ``session:<uuid>`` — everything that happens in one chat session (messages, status, urgency,
  typing, erasure). The visitor's socket subscribes; volunteer sockets will too.
* ``queue`` — changes that affect queue order (session opened/closed, urgency raised), for
  routing, escalation and the queue-position monitor.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from app.bus.base import RESYNC, Bus, Event, Payload, Subscription
from app.bus.memory import InProcessBus
from app.bus.postgres import PostgresBus

QUEUE_CHANNEL = "queue"


def session_channel(session_id: uuid.UUID | str) -> str:
    return f"session:{session_id}"


def create_bus(database_url: str, engine: AsyncEngine) -> Bus:
    if engine.dialect.name == "postgresql":
        return PostgresBus(database_url=database_url, engine=engine)
    return InProcessBus()


__all__ = [
    "QUEUE_CHANNEL",
    "RESYNC",
    "Bus",
    "Event",
    "InProcessBus",
    "Payload",
    "PostgresBus",
    "Subscription",
    "create_bus",
    "session_channel",
]
