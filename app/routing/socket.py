"""One volunteer socket from ``auth`` to goodbye: the I/O around
:class:`~app.routing.protocol.VolunteerProtocol`, independent of the WebSocket library.

:func:`app.core.wsloop.drive` reads frames and feeds the protocol (the same loop as the visitor
socket's); this class runs the commands it asks for — authenticate and start the volunteer's
:class:`~app.routing.live.VolunteerLink`, hand a frame to the link, request a hotline handoff —
and turns their refusals back into the protocol's error frames.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus.base import Bus
from app.chat.committer import MessageCommitter
from app.core.config import Settings
from app.core.db import transaction
from app.core.errors import BeaconError
from app.core.metrics import Metrics
from app.core.wsloop import Action, ConnectionGone, Performer, Send, Transport, drive
from app.routing import accounts, frames
from app.routing.accounts import Principal
from app.routing.live import VolunteerLink
from app.routing.protocol import Authenticate, Command, Handoff, VolunteerProtocol
from app.routing.worker import RoutingWorker

log = structlog.get_logger(__name__)

# What a database call raises while Postgres is away: a DBAPIError from the driver, or the
# OSError of a refused connection (the pool opens connections outside the driver's wrapping).
DATABASE_DOWN = (DBAPIError, OSError)

# The ``handoff`` frame's use case (escalation), given by the router: it answers with the frame.
RequestHandoff = Callable[[Principal, uuid.UUID], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class VolunteerDeps:
    """What a volunteer socket needs from the lifespan."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: Bus
    worker: RoutingWorker
    committer: MessageCommitter
    metrics: Metrics
    handoff: RequestHandoff


class VolunteerSocket:
    def __init__(self, transport: Transport, deps: VolunteerDeps) -> None:
        self._transport = transport
        self._deps = deps
        settings = deps.settings
        self._protocol = VolunteerProtocol(
            now=time.monotonic(),
            auth_timeout_s=settings.hello_timeout_s,
            rate=settings.volunteer_ws_rate_limit_per_s,
            burst=settings.volunteer_ws_rate_limit_burst,
            disconnect_after=settings.volunteer_ws_flood_disconnect_after,
        )
        self._io = Performer(send=self._send, close=transport.close, perform=self._perform)
        self._stack = contextlib.AsyncExitStack()
        self._link: VolunteerLink | None = None

    async def run(self) -> None:
        with contextlib.suppress(ConnectionGone):
            async with self._stack:  # the link, once authenticated, stops when the loop ends
                await drive(self._transport, self._protocol, self._io)

    async def _send(self, text: str) -> None:
        # A peer that has gone is noticed by the loop's next read; the pumps just go quiet.
        with contextlib.suppress(ConnectionGone):
            await self._transport.send(text)

    async def _perform(self, command: Command) -> Sequence[Action]:
        if isinstance(command, Authenticate):
            return await self._authenticate(command.frame)
        link = self._link
        assert link is not None
        try:
            if isinstance(command, Handoff):
                reply = await self._deps.handoff(link.principal, command.frame.session_id)
                return [Send(frames.raw_frame(reply))]
            await link.handle(command.frame)
        except BeaconError as exc:
            return self._protocol.refused(command.frame, exc)
        except DATABASE_DOWN as exc:
            log.warning("volunteer_frame_db_error", error_type=type(exc).__name__)
            return self._protocol.unavailable(command.frame)
        return []

    async def _authenticate(self, frame: frames.AuthFrame) -> Sequence[Action]:
        deps = self._deps
        try:
            async with transaction(deps.sessionmaker) as db:
                principal = await accounts.authenticate(db, frame.token)
        except BeaconError as exc:
            return self._protocol.unauthorized(exc)
        except DATABASE_DOWN as exc:
            log.warning("volunteer_connect_db_error", error_type=type(exc).__name__)
            return self._protocol.unavailable()
        link = VolunteerLink(
            principal=principal,
            sessionmaker=deps.sessionmaker,
            settings=deps.settings,
            bus=deps.bus,
            worker=deps.worker,
            committer=deps.committer,
            metrics=deps.metrics,
            send=self._send,
        )
        deps.metrics.connected_volunteers.inc()
        log.info("volunteer_connected", volunteer_id=str(principal.id), role=principal.role)
        self._stack.push_async_callback(self._gone, link)
        try:
            await link.start(frame.last_seq)
        except DATABASE_DOWN as exc:
            log.warning("volunteer_connect_db_error", error_type=type(exc).__name__)
            return self._protocol.unavailable()
        self._link = link
        self._protocol.authenticated()
        return []

    async def _gone(self, link: VolunteerLink) -> None:
        self._deps.metrics.connected_volunteers.dec()
        await link.stop()
        log.info("volunteer_disconnected", volunteer_id=str(link.principal.id))
