"""Handoff on request, as both edges ask for it: the dashboard's REST call and the volunteer
socket's ``handoff`` frame. Same rules, one function; the caller owns the transaction and wakes
the escalation worker after it commits (the delivery loop then sends the webhook at once).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import Bus
from app.core.config import Settings
from app.core.db import transaction
from app.escalation import service
from app.escalation.models import Handoff
from app.routing.accounts import Principal


@dataclass(frozen=True, slots=True)
class HandoffStarted:
    session_id: uuid.UUID
    handoff_id: uuid.UUID
    status: str
    trigger: str

    @classmethod
    def of(cls, handoff: Handoff) -> HandoffStarted:
        return cls(handoff.session_id, handoff.id, handoff.status, handoff.trigger)


async def request_handoff(
    db: AsyncSession, bus: Bus, settings: Settings, me: Principal, session_id: uuid.UUID
) -> Handoff:
    """The volunteer holding the session, or any supervisor, hands it off now. Asking again
    while one is under way returns that one."""
    return await service.request_handoff(db, bus, settings, me, session_id)


class _Wakes(Protocol):
    def wake(self) -> None: ...


class Edge(Protocol):
    """What a socket holds of the app state (``app.state.BeaconState`` has all of it)."""

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def escalation(self) -> _Wakes: ...


async def over_socket(edge: Edge, me: Principal, session_id: uuid.UUID) -> dict[str, Any]:
    """The volunteer socket's ``handoff`` frame: same rules as the REST call, own transaction,
    and the worker is woken only once it committed."""
    async with transaction(edge.sessionmaker) as db:
        handoff = await request_handoff(db, edge.bus, edge.settings, me, session_id)
    edge.escalation.wake()
    started = HandoffStarted.of(handoff)
    return {
        "type": "handoff",
        "session_id": str(started.session_id),
        "handoff_id": str(started.handoff_id),
        "status": started.status,
        "trigger": started.trigger,
    }
