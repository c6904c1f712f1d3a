"""One visitor socket from hello to goodbye (SPEC §3, §6, §9), independent of the WebSocket
library: the router adapts Starlette's WebSocket to :class:`Transport`.

Frames are handled one at a time, each in its own short transaction (a message's transaction is
the committer's shared batch); no database session lives between frames. A second task pumps
the session's bus channel (messages from others, status changes, queue position) to the socket;
:class:`~app.chat.feed.VisitorFeed` keeps every delivery ordered and exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import Bus, Subscription, session_channel
from app.chat import events, frames
from app.chat.admission import SessionOpenLimiter
from app.chat.committer import MessageCommitter, NewMessage
from app.chat.errors import InvalidResumeToken, SessionClosed, SessionNotFound, StoreUnavailable
from app.chat.feed import VisitorFeed
from app.chat.frames import CloseCode, ErrorCode, FrameError
from app.chat.presence import VisitorPresence
from app.chat.ratelimit import FrameRateLimiter, Verdict
from app.chat.service import (
    TERMINAL_STATUSES,
    SessionStatus,
    SessionView,
    close_by_visitor,
    erase_transcript,
    get_session,
    open_session,
    resume_session,
    visitor_disconnected,
)
from app.core.config import Settings
from app.core.db import transaction
from app.core.metrics import Metrics
from app.routing.queue import QueueInfo, QueueMonitor

log = structlog.get_logger(__name__)

TYPING_THROTTLE_S = 2.0
_NO_QUEUE = QueueInfo(position=None, estimated_wait_s=None)
# The five states a visitor sees (SPEC §6); internal ones map onto the nearest.
_VISIBLE_STATUS = {
    SessionStatus.transferring.value: SessionStatus.active.value,
    SessionStatus.abandoned.value: SessionStatus.closed.value,
}


class ConnectionGone(Exception):
    """The peer is gone; nothing more can be sent."""


@dataclass(frozen=True, slots=True)
class TextIn:
    text: str


@dataclass(frozen=True, slots=True)
class BinaryIn:
    pass


@dataclass(frozen=True, slots=True)
class Disconnected:
    code: int


Incoming = TextIn | BinaryIn | Disconnected


class Transport(Protocol):
    async def receive(self) -> Incoming: ...

    async def send(self, text: str) -> None:
        """Raises :class:`ConnectionGone` if the peer has gone."""

    async def close(self, code: int, reason: str = "") -> None: ...


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


@dataclass(frozen=True, slots=True)
class _Opened:
    session: SessionView
    resume_token: str
    delivered_seq: int
    last_seq_refused: bool
    new: bool = False  # opened by this hello: nobody else knows it yet, nothing to replay


class VisitorConnection:
    def __init__(self, transport: Transport, deps: ChatDeps, *, client: str = "-") -> None:
        """``client``: the key the per-client session limit counts (app/chat/admission)."""
        self._transport = transport
        self._deps = deps
        self._client = client
        settings = deps.settings
        self._limiter = FrameRateLimiter(
            rate=settings.ws_rate_limit_per_s,
            burst=settings.ws_rate_limit_burst,
            disconnect_after=settings.ws_flood_disconnect_after,
        )
        self._max_text_bytes = settings.max_text_bytes
        self._session_id: uuid.UUID | None = None
        self._feed: VisitorFeed | None = None
        self._status = SessionStatus.waiting.value
        # In the queue when waiting (the visitor has spoken, or the session is high+): a silent
        # session has no place in it, so there is nothing to look up for it.
        self._queueable = False
        self._queue_info = _NO_QUEUE
        self._last_status_frame: str | None = None
        self._last_typing = 0.0
        self._closing = False
        self._ending = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        self._deps.metrics.connected_visitors.inc()
        try:
            await self._run()
        except ConnectionGone:
            pass
        except Exception:
            # Never a dead handler without a word: tell the client, close with 1011.
            log.exception("visitor_socket_failed", session_id=self._session_label)
            with contextlib.suppress(Exception):
                await self._transport.send(
                    frames.error_frame(ErrorCode.internal_error, "internal error; reconnect")
                )
            with contextlib.suppress(Exception):
                await self._transport.close(CloseCode.internal_error, "internal error")
        finally:
            self._deps.metrics.connected_visitors.dec()

    @property
    def _session_label(self) -> str | None:
        return None if self._session_id is None else str(self._session_id)

    async def _run(self) -> None:
        hello = await self._await_hello()
        if hello is None:
            return
        opened = await self._open(hello)
        if opened is None:
            return
        session = opened.session
        self._session_id = session.id
        self._queueable = session.queueable
        deps = self._deps
        feed = self._feed = VisitorFeed(
            session_id=session.id,
            sessionmaker=deps.sessionmaker,
            send=self._transport.send,
            delivered_seq=opened.delivered_seq,
            recent=deps.committer.recent,
        )
        deps.presence.attach(session.id)
        # Subscribe before reading anything: a message committed meanwhile is heard, not lost.
        subscription = deps.bus.subscribe(session_channel(session.id))
        subscription.accept = feed.wants
        unwatch = deps.queue.watch(session.id, lambda info: _deliver_queue_info(subscription, info))
        pump: asyncio.Task[None] | None = None
        try:
            await feed.send(
                frames.session_frame(
                    session_id=str(session.id),
                    resume_token=opened.resume_token,
                    status=self._visible(session.status),
                    last_seq=session.last_seq,
                )
            )
            if opened.last_seq_refused:
                await feed.send(
                    frames.error_frame(
                        ErrorCode.invalid_last_seq,
                        f"last_seq is beyond this session's last message ({session.last_seq});"
                        " replaying nothing",
                    )
                )
            if not opened.new:
                await feed.catch_up()
            await self._on_status(session.status, fresh=session.last_seq == 0)
            if self._closing:
                return
            pump = asyncio.create_task(self._pump(subscription), name="visitor-pump")
            await self._frames()
        finally:
            unwatch()
            subscription.close()
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            if deps.presence.detach(session.id):
                try:
                    # A session that never spoke waits its turn, as its opening did.
                    writes = deps.session_opens.writes
                    gate = contextlib.nullcontext() if self._queueable else writes
                    async with gate, transaction(deps.sessionmaker) as db:
                        await visitor_disconnected(db, session_id=session.id)
                except (DBAPIError, OSError):
                    log.warning("visitor_disconnect_not_recorded", session_id=str(session.id))

    async def _send(self, text: str) -> None:
        if self._feed is not None:
            await self._feed.send(text)
        else:
            await self._transport.send(text)

    async def _error(self, code: ErrorCode, detail: str, client_msg_id: str | None = None) -> None:
        await self._send(frames.error_frame(code, detail, client_msg_id=client_msg_id))

    async def _close(self, code: int, reason: str) -> None:
        self._closing = True
        await self._transport.close(code, reason)

    # -- hello -------------------------------------------------------------------------------

    async def _await_hello(self) -> frames.HelloFrame | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deps.settings.hello_timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    incoming = await self._transport.receive()
            except TimeoutError:
                await self._error(ErrorCode.hello_timeout, "no hello frame in time")
                await self._close(CloseCode.policy_violation, "hello timeout")
                return None
            frame = await self._accept(incoming)
            if frame is None:
                if self._closing or isinstance(incoming, Disconnected):
                    return None
                continue
            if isinstance(frame, frames.HelloFrame):
                return frame
            await self._error(ErrorCode.hello_required, "the first frame must be a hello")
            await self._close(CloseCode.policy_violation, "hello required")
            return None

    async def _open(self, hello: frames.HelloFrame) -> _Opened | None:
        deps = self._deps
        ttl = deps.settings.resume_token_ttl_s
        try:
            if hello.resume_token is None:
                if not await self._may_open():
                    return None
                async with deps.session_opens.writes, transaction(deps.sessionmaker) as db:
                    session, token = await open_session(
                        db, deps.bus, locale=hello.locale, channel=hello.channel, token_ttl_s=ttl
                    )
                return _Opened(session, token, 0, last_seq_refused=False, new=True)
            async with transaction(deps.sessionmaker) as db:
                session = await resume_session(
                    db, deps.bus, token=hello.resume_token, token_ttl_s=ttl
                )
        except InvalidResumeToken:
            await self._error(ErrorCode.invalid_resume_token, "unknown or expired resume token")
            await self._close(CloseCode.policy_violation, "invalid resume token")
            return None
        except (DBAPIError, OSError):
            log.warning("visitor_open_failed")
            await self._error(ErrorCode.temporarily_unavailable, "please reconnect shortly")
            await self._close(CloseCode.try_again_later, "try again later")
            return None
        last_seq = hello.last_seq or 0
        refused = last_seq > session.last_seq
        return _Opened(
            session,
            hello.resume_token,
            session.last_seq if refused else last_seq,
            last_seq_refused=refused,
        )

    async def _may_open(self) -> bool:
        """The per-client limit on new sessions (resuming never comes here). A refusal says
        when to retry, so a client can try again by itself instead of giving up."""
        deps = self._deps
        retry_after = deps.session_opens.try_open(self._client)
        if retry_after is None:
            return True
        deps.metrics.sessions_refused.inc()
        log.info("session_open_refused", retry_after_s=round(retry_after, 1))
        await self._send(
            frames.error_frame(
                ErrorCode.too_many_sessions,
                "too many new chats from your network; please try again shortly",
                retry_after_s=max(1, math.ceil(retry_after)),
            )
        )
        await self._close(CloseCode.try_again_later, "too many sessions")
        return False

    # -- client frames -----------------------------------------------------------------------

    async def _accept(self, incoming: Incoming) -> frames.ClientFrame | None:
        """Rate limit and parse one incoming frame; None when it was refused (or the socket
        is closing). Answers refusals itself."""
        if isinstance(incoming, Disconnected):
            return None
        if isinstance(incoming, BinaryIn):
            await self._close(CloseCode.unsupported_data, "binary frames are not supported")
            return None
        verdict = self._limiter.check()
        if verdict is Verdict.disconnect:
            await self._error(ErrorCode.rate_limited, "too many frames; closing")
            await self._close(CloseCode.policy_violation, "rate limit exceeded")
            return None
        if verdict is Verdict.reject:
            await self._error(ErrorCode.rate_limited, "too many frames; this one was dropped")
            return None
        try:
            return frames.parse_client_frame(incoming.text, max_text_bytes=self._max_text_bytes)
        except FrameError as exc:
            await self._error(exc.code, exc.detail, exc.client_msg_id)
            return None

    async def _frames(self) -> None:
        while not self._closing:
            incoming = await self._transport.receive()
            if isinstance(incoming, Disconnected):
                return
            frame = await self._accept(incoming)
            if frame is None:
                continue
            if isinstance(frame, frames.MessageFrame):
                await self._on_message(frame)
            elif isinstance(frame, frames.PingFrame):
                await self._send(frames.PONG_FRAME)
            elif isinstance(frame, frames.TypingFrame):
                await self._on_typing()
            elif isinstance(frame, frames.CloseFrame):
                await self._end(erase=False)
            else:
                await self._error(ErrorCode.invalid_frame, "hello was already received")

    async def _on_message(self, frame: frames.MessageFrame) -> None:
        if frames.is_erase_command(frame.text):
            await self._end(erase=True)
            return
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
            await self._error(ErrorCode.session_closed, "this chat has ended", frame.client_msg_id)
            return
        except (StoreUnavailable, SessionNotFound):
            self._feed.expect_ack(None)
            await self._error(
                ErrorCode.temporarily_unavailable,
                "not stored; resend with the same client_msg_id",
                frame.client_msg_id,
            )
            return
        await self._feed.acknowledge(stored)
        self._queueable = True  # the committer put a waiting session in the queue with it

    async def _on_typing(self) -> None:
        now = time.monotonic()
        if now - self._last_typing < TYPING_THROTTLE_S:
            return
        self._last_typing = now
        assert self._session_id is not None
        with contextlib.suppress(DBAPIError, OSError):  # a lost typing hint costs nothing
            await self._deps.bus.publish_many(events.typing(self._session_id, "visitor"))

    async def _end(self, *, erase: bool) -> None:
        """``close`` frame or ``DELETE``: end the chat, confirm with a ``closed`` status, close."""
        assert self._session_id is not None
        deps = self._deps
        self._ending = True  # our own status announcement must not race the confirmation below
        try:
            async with transaction(deps.sessionmaker) as db:
                if erase:
                    await erase_transcript(db, deps.bus, session_id=self._session_id)
                    deps.committer.forget(self._session_id)
                else:
                    await close_by_visitor(db, deps.bus, session_id=self._session_id)
        except (DBAPIError, OSError):
            log.warning("visitor_end_failed", session_id=self._session_label, erase=erase)
            self._ending = False
            await self._error(ErrorCode.temporarily_unavailable, "please try again")
            return
        self._status = SessionStatus.closed.value
        reason = "erased" if erase else "visitor_closed"
        await self._send_status(reason=reason)
        await self._close(CloseCode.normal, "transcript erased" if erase else "chat closed")

    # -- what the bus brings -----------------------------------------------------------------

    async def _pump(self, subscription: Subscription) -> None:
        assert self._feed is not None
        async for payload in subscription:
            try:
                await self._on_bus(payload)
            except ConnectionGone:
                return
            except Exception:
                # e.g. the database was briefly away while loading a message: retry from scratch
                log.exception("visitor_pump_failed", session_id=self._session_label)
                await asyncio.sleep(1.0)
                subscription.resync()

    async def _on_bus(self, payload: dict[str, Any]) -> None:
        assert self._feed is not None
        kind = payload.get("kind")
        if kind == "message":
            seq = payload.get("seq")
            if isinstance(seq, int):
                await self._feed.on_hint(seq, payload.get("sender"), payload.get("client_msg_id"))
        elif kind == "status":
            await self._on_status(str(payload.get("status")), fresh=True)
        elif kind == "queue_info":
            if self._status == SessionStatus.waiting:
                self._queue_info = QueueInfo(
                    position=payload.get("position"),
                    estimated_wait_s=payload.get("estimated_wait_s"),
                )
                await self._send_status()
        elif kind == "typing" and payload.get("sender") in ("volunteer", "system"):
            await self._send(frames.typing_frame(str(payload["sender"])))
        elif kind == "resync":
            await self._feed.catch_up()
            await self._reload_status()

    async def _reload_status(self) -> None:
        assert self._session_id is not None
        async with self._deps.sessionmaker() as db:
            session = await get_session(db, self._session_id)
        if session is not None:
            self._queueable = session.queueable
            await self._on_status(session.status, fresh=True)

    async def _on_status(self, status: str, *, fresh: bool) -> None:
        assert self._session_id is not None
        if self._ending or self._closing:
            return
        self._status = status
        if status == SessionStatus.waiting and self._queueable:
            self._queue_info = await self._deps.queue.lookup(self._session_id, fresh=fresh)
        else:
            self._queue_info = _NO_QUEUE
        await self._send_status()
        if status in TERMINAL_STATUSES and not self._closing:
            await self._close(CloseCode.normal, "chat closed")

    async def _send_status(self, reason: str | None = None) -> None:
        waiting = self._status == SessionStatus.waiting
        frame = frames.status_frame(
            status=self._visible(self._status),
            queue_position=self._queue_info.position if waiting else None,
            estimated_wait_s=self._queue_info.estimated_wait_s if waiting else None,
            reason=reason,
        )
        if frame == self._last_status_frame:
            return
        self._last_status_frame = frame
        await self._send(frame)

    @staticmethod
    def _visible(status: str) -> str:
        return _VISIBLE_STATUS.get(status, status)


def _deliver_queue_info(subscription: Subscription, info: QueueInfo) -> None:
    subscription.deliver(
        {
            "kind": "queue_info",
            "position": info.position,
            "estimated_wait_s": info.estimated_wait_s,
        }
    )
