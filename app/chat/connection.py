"""One visitor socket from hello to goodbye (SPEC §3, §6, §9): the I/O around
:class:`~app.chat.protocol.VisitorProtocol`, independent of the WebSocket library.

:func:`app.core.wsloop.drive` reads frames and feeds the protocol; this class runs the commands
the protocol asks for (open or resume the session, store a message, typing, end the chat) and
hands their outcome back to it. Each command runs in its own short transaction (a message's
is the committer's shared batch); no database session lives between frames. A second task
pumps the session's bus channel (messages from others, status changes, queue position) to the
socket; :class:`~app.chat.feed.VisitorFeed` keeps every delivery ordered and exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import Bus, Subscription, session_channel
from app.chat import consent, events, frames
from app.chat.admission import SessionOpenLimiter
from app.chat.committer import MessageCommitter, NewMessage
from app.chat.errors import InvalidResumeToken, SessionClosed, SessionNotFound, StoreUnavailable
from app.chat.feed import VisitorFeed
from app.chat.frames import ErrorCode
from app.chat.opener import SessionOpener
from app.chat.presence import VisitorPresence
from app.chat.protocol import (
    Command,
    Deliver,
    End,
    GiveConsent,
    Open,
    Resync,
    ShowStatus,
    Submit,
    Typing,
    VisitorProtocol,
    error,
    visible,
)
from app.chat.queue import QueueInfo, QueueMonitor
from app.chat.service import (
    NewSession,
    SessionView,
    close_by_visitor,
    erase_transcript,
    get_session,
)
from app.core.config import Settings
from app.core.db import transaction
from app.core.metrics import Metrics
from app.core.wsloop import Action, ConnectionGone, Performer, Transport, drive

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ChatDeps:
    """What a visitor socket needs from the lifespan."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: Bus
    committer: MessageCommitter
    queue: QueueMonitor
    presence: VisitorPresence
    metrics: Metrics
    session_opens: SessionOpenLimiter
    opener: SessionOpener


@dataclass(frozen=True, slots=True)
class _Opened:
    session: SessionView
    resume_token: str
    delivered_seq: int
    last_seq_refused: bool
    new: bool = False  # opened by this hello: nobody else knows it yet, nothing to replay


class VisitorConnection:
    """Slotted, and holding no task or timer while idle: a server keeps thousands of these
    (SPEC §10). The bus pump is a task only while there is something to drain."""

    __slots__ = (
        "_client",
        "_deps",
        "_feed",
        "_io",
        "_protocol",
        "_pump",
        "_session_id",
        "_subscription",
        "_transport",
    )

    def __init__(self, transport: Transport, deps: ChatDeps, *, client: str = "-") -> None:
        """``client``: the key the per-client session limit counts (app/chat/admission)."""
        self._transport = transport
        self._deps = deps
        self._client = client
        settings = deps.settings
        self._protocol = VisitorProtocol(
            now=time.monotonic(),
            hello_timeout_s=settings.hello_timeout_s,
            max_text_bytes=settings.max_text_bytes,
            rate=settings.ws_rate_limit_per_s,
            burst=settings.ws_rate_limit_burst,
            disconnect_after=settings.ws_flood_disconnect_after,
        )
        self._io = Performer(send=self._send, close=transport.close, perform=self._perform)
        # Set when the session is attached (presence, queue watch): what teardown undoes.
        self._session_id: uuid.UUID | None = None
        self._feed: VisitorFeed | None = None
        self._subscription: Subscription | None = None
        self._pump: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        self._deps.metrics.connected_visitors.inc()
        try:
            try:
                await drive(self._transport, self._protocol, self._io)
            finally:
                await self._take_down()  # what the hello set up goes when the loop ends
        except ConnectionGone:
            pass
        except Exception:
            log.exception("visitor_socket_failed", session_id=self._session_label)
            bare = Performer(self._transport.send, self._transport.close, self._perform)
            with contextlib.suppress(Exception):
                await bare.run(self._protocol.internal_error())
        finally:
            self._deps.metrics.connected_visitors.dec()

    async def _take_down(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None:
            await _cancel(pump)
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()
        if self._session_id is not None:  # kept: failures after this still log it
            self._deps.queue.unwatch(self._session_id, self._queue_moved)
            await self._detach(self._session_id)

    @property
    def _session_label(self) -> str | None:
        return None if self._session_id is None else str(self._session_id)

    async def _send(self, text: str) -> None:
        if self._feed is not None:
            await self._feed.send(text)
        else:
            await self._transport.send(text)

    async def _perform(self, command: Command) -> Sequence[Action]:
        if isinstance(command, Deliver):
            assert self._feed is not None
            await self._feed.on_hint(command.seq, command.sender, command.client_msg_id)
            return []
        if isinstance(command, ShowStatus):
            await self._on_status(command.status, fresh=True)
            return []
        if isinstance(command, Resync):
            assert self._feed is not None
            await self._feed.catch_up()
            await self._reload_status()
            return []
        if isinstance(command, Submit):
            return await self._submit(command.frame)
        if isinstance(command, Typing):
            return await self._typing()
        if isinstance(command, GiveConsent):
            return await self._consent(command.frame)
        if isinstance(command, End):
            return await self._end(erase=command.erase)
        assert isinstance(command, Open)
        return await self._hello(command.hello)

    # -- hello -------------------------------------------------------------------------------

    async def _hello(self, hello: frames.HelloFrame) -> Sequence[Action]:
        opened = await self._open(hello)
        if not isinstance(opened, _Opened):
            return opened
        self._protocol.opened(queueable=opened.session.queueable)
        feed = self._attach(opened)
        session = opened.session
        await feed.send(
            frames.SessionOut(
                session_id=str(session.id),
                resume_token=opened.resume_token,
                status=visible(session.status),
                last_seq=session.last_seq,
            ).dump()
        )
        if opened.last_seq_refused:
            refusal = error(
                ErrorCode.invalid_last_seq,
                f"last_seq is beyond this session's last message ({session.last_seq});"
                " replaying nothing",
            )
            await feed.send(refusal.text)
        if opened.delivered_seq < session.last_seq:
            # Replay. Anything committed after the open's own read is heard on the bus: the
            # subscription was made before that transaction committed (see _open).
            await feed.catch_up()
        await self._on_status(session.status, fresh=session.last_seq == 0)
        subscription = self._subscription
        if subscription is not None and not self._protocol.closing:
            subscription.notify = self._wake_pump
            if subscription.pending():
                self._wake_pump()
        return []

    def _attach(self, opened: _Opened) -> VisitorFeed:
        """The session's feed, presence and queue watch, for as long as the socket."""
        session = opened.session
        deps = self._deps
        self._session_id = session.id
        feed = self._feed = VisitorFeed(
            session_id=session.id,
            sessionmaker=deps.sessionmaker,
            send=self._transport.send,
            delivered_seq=opened.delivered_seq,
            recent=deps.committer.recent,
        )
        deps.presence.attach(session.id)
        if self._subscription is not None:
            self._subscription.accept = feed.wants
        deps.queue.watch(session.id, self._queue_moved)
        return feed

    def _listen(self, session_id: uuid.UUID) -> None:
        """Subscribe to the session's channel. Called inside the open's transaction, before
        its commit: the session's row is locked until then, so every message stored after the
        open read ``last_seq`` commits (and is announced) after this subscription exists, and
        nothing needs reading again to find it. (Again after a retried commit: the last wins.)"""
        channel = session_channel(session_id)
        if self._subscription is not None:
            if self._subscription.channel == channel:
                return
            self._subscription.close()
        self._subscription = self._deps.bus.subscribe(channel)

    async def _detach(self, session_id: uuid.UUID) -> None:
        deps = self._deps
        if not deps.presence.detach(session_id):
            return
        try:
            # Group-committed with the other sockets closing meanwhile (one pooled connection
            # at most, so a flood of drive-bys leaving never starves the messages' commits).
            await deps.opener.leave(session_id)
        except (DBAPIError, OSError, StoreUnavailable):
            log.warning("visitor_disconnect_not_recorded", session_id=str(session_id))

    async def _open(self, hello: frames.HelloFrame) -> _Opened | list[Action]:
        """One commit (shared with the hellos arriving meanwhile, app/chat/opener.py), and no
        read beyond the row itself."""
        deps = self._deps
        try:
            if hello.resume_token is None:
                refusal = self._may_open()
                if refusal:
                    return refusal
                request = NewSession(locale=hello.locale, channel=hello.channel)
                session, token = await deps.opener.open(request, self._listen)
                return _Opened(session, token, 0, last_seq_refused=False, new=True)
            session = await deps.opener.resume(hello.resume_token, self._listen)
        except InvalidResumeToken:
            return self._protocol.invalid_resume_token()
        except (StoreUnavailable, DBAPIError, OSError):
            log.warning("visitor_open_failed")
            return self._protocol.unavailable()
        last_seq = hello.last_seq or 0
        refused = last_seq > session.last_seq
        return _Opened(
            session,
            hello.resume_token,
            session.last_seq if refused else last_seq,
            last_seq_refused=refused,
        )

    def _may_open(self) -> list[Action]:
        """The per-client limit on new sessions (resuming never comes here)."""
        deps = self._deps
        retry_after = deps.session_opens.try_open(self._client)
        if retry_after is None:
            return []
        deps.metrics.sessions_refused.inc()
        log.info("session_open_refused", retry_after_s=round(retry_after, 1))
        return self._protocol.too_many_sessions(retry_after)

    # -- client frames -----------------------------------------------------------------------

    async def _submit(self, frame: frames.MessageFrame) -> Sequence[Action]:
        assert self._session_id is not None
        assert self._feed is not None
        self._feed.expect_ack(frame.client_msg_id)
        try:
            stored = await self._deps.committer.submit(
                NewMessage(
                    session_id=self._session_id,
                    sender="visitor",
                    text=frame.text,
                    client_msg_id=frame.client_msg_id,
                )
            )
        except SessionClosed:
            self._feed.expect_ack(None)
            return self._protocol.not_stored(frame.client_msg_id, closed=True)
        except (StoreUnavailable, SessionNotFound):
            self._feed.expect_ack(None)
            return self._protocol.not_stored(frame.client_msg_id, closed=False)
        await self._feed.acknowledge(stored)
        self._protocol.stored()
        return []

    async def _consent(self, frame: frames.ConsentFrame) -> Sequence[Action]:
        assert self._session_id is not None
        number = frame.contact_number.strip() if frame.contact_number else None
        try:
            async with transaction(self._deps.sessionmaker) as db:
                answer = await consent.record_answer(
                    db,
                    self._deps.bus,
                    self._session_id,
                    transcript=frame.transcript,
                    contact=frame.contact,
                    phone=number,
                )
        except consent.ConsentNotRequested:
            return self._protocol.consent_refused(ErrorCode.consent_not_requested)
        except (SessionClosed, SessionNotFound):
            return self._protocol.consent_refused(ErrorCode.session_closed)
        except (DBAPIError, OSError):
            return self._protocol.consent_refused(ErrorCode.temporarily_unavailable)
        return self._protocol.consent_recorded(answer.transcript, answer.contact)

    async def _typing(self) -> Sequence[Action]:
        assert self._session_id is not None
        # A lost typing hint costs nothing (TimeoutError: the bus's bound on a publish).
        with contextlib.suppress(DBAPIError, OSError, TimeoutError):
            await self._deps.bus.publish_many(events.typing(self._session_id, "visitor"))
        return []

    async def _end(self, *, erase: bool) -> Sequence[Action]:
        """``close`` frame or ``DELETE``: end the chat; the protocol confirms and closes."""
        assert self._session_id is not None
        deps = self._deps
        try:
            async with transaction(deps.sessionmaker) as db:
                if erase:
                    await erase_transcript(db, deps.bus, session_id=self._session_id)
                    deps.committer.forget(self._session_id)
                else:
                    await close_by_visitor(db, deps.bus, session_id=self._session_id)
        except (DBAPIError, OSError):
            log.warning("visitor_end_failed", session_id=self._session_label, erase=erase)
            return self._protocol.end_failed()
        return self._protocol.ended(erase=erase)

    # -- what the bus brings -----------------------------------------------------------------

    def _wake_pump(self) -> None:
        if self._pump is None and self._subscription is not None and not self._protocol.closing:
            self._pump = asyncio.create_task(self._drain(self._subscription), name="visitor-pump")

    async def _drain(self, subscription: Subscription) -> None:
        """Handle what the bus brought, in order, then end: an idle socket holds no task."""
        try:
            while subscription.pending():
                payload = await subscription.get()
                try:
                    await self._on_bus(payload)
                except ConnectionGone:
                    return
                except Exception:
                    # e.g. the database was briefly away loading a message: retry from scratch
                    log.exception("visitor_pump_failed", session_id=self._session_label)
                    await asyncio.sleep(1.0)
                    subscription.resync()
        finally:
            if self._pump is asyncio.current_task():
                self._pump = None

    def _queue_moved(self, info: QueueInfo) -> None:
        if self._subscription is not None:
            self._subscription.deliver(
                {
                    "kind": "queue_info",
                    "position": info.position,
                    "estimated_wait_s": info.estimated_wait_s,
                }
            )

    async def _on_bus(self, payload: dict[str, Any]) -> None:
        await self._io.run(self._protocol.event(payload))

    async def _reload_status(self) -> None:
        assert self._session_id is not None
        async with self._deps.sessionmaker() as db:
            session = await get_session(db, self._session_id)
        if session is not None:
            self._protocol.queueable = session.queueable
            await self._on_status(session.status, fresh=True)

    async def _on_status(self, status: str, *, fresh: bool) -> None:
        """Show a status; a waiting session in the queue is shown with its place."""
        assert self._session_id is not None
        protocol = self._protocol
        if protocol.quiet:
            return
        place = QueueInfo(position=None, estimated_wait_s=None)
        if protocol.wants_queue_place(status):
            place = await self._deps.queue.lookup(self._session_id, fresh=fresh)
        await self._io.run(protocol.show_status(status, place.position, place.estimated_wait_s))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
