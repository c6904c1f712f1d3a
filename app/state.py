"""What the lifespan builds, in one typed place that routers and sockets import.

It lives apart from :mod:`app.main` so that nothing imports the application factory: the
factory imports the routers, the routers import this module, and this module imports only the
parts it names (never a router), so the import graph stays a tree (tests/test_architecture.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.bus import Bus
from app.chat.admission import SessionOpenLimiter
from app.chat.committer import MessageCommitter
from app.chat.opener import SessionOpener
from app.chat.presence import VisitorPresence
from app.chat.queue import QueueMonitor
from app.core.config import Settings
from app.core.metrics import Metrics
from app.core.pacing import AcceptPacer
from app.escalation.worker import EscalationWorker
from app.retention.worker import RetentionWorker
from app.routing.at_risk import LostVisitorWatch
from app.routing.worker import RoutingWorker
from app.triage import Engine


@dataclass
class BeaconState:
    """Everything the lifespan builds; reached through :func:`state_of`."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    metrics: Metrics
    bus: Bus
    # The triage engine (model and tables), loaded once before the first frame is accepted.
    triage: Engine
    # The one path by which a chat message gets its seq and is committed (group commit).
    committer: MessageCommitter
    # Offers, offer/presence timeouts and requeues; every instance runs one (DB claims decide).
    routing: RoutingWorker
    # Queue position / wait estimate pushed to waiting visitors' sockets.
    queue: QueueMonitor
    # Visitor sockets on this instance: presence heartbeat and the abandonment sweeper.
    visitors: VisitorPresence
    # New sessions per client address on this instance (SPEC §9); resuming is never limited.
    session_opens: SessionOpenLimiter
    # Hellos (new sessions, resumes), group-committed like messages.
    opener: SessionOpener
    # Safety messages, supervisor alerts, the handoff clock and partner webhooks (SPEC §5).
    escalation: EscalationWorker
    # High+ visitors gone past the grace: supervisors' at-risk list and alert (SPEC §3).
    lost_visitors: LostVisitorWatch
    # Periodic purge of transcript text past the retention period (SPEC §9).
    retention: RetentionWorker
    # New connections wait their turn while chats need the event loop (None: pacing is off).
    accept_pacer: AcceptPacer | None = None


# The name the routers used before the state had a module of its own.
AppState = BeaconState


def state_of(connection: HTTPConnection) -> BeaconState:
    """The state of the app serving this request or WebSocket (typed, checked once here)."""
    state = connection.app.state.beacon
    if not isinstance(state, BeaconState):
        raise RuntimeError("the Beacon lifespan has not run for this app")
    return state
