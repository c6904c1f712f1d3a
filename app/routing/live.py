"""One volunteer's live connection: what it subscribes to, and what each client frame does.

Independent of the WebSocket library: it is given a ``send`` coroutine that takes one text
frame (app/routing/socket.py runs the socket and its protocol around it). Every client frame runs
in its own short transaction (never one held for the connection), and whatever that frame
changed is announced on the bus inside the same transaction, so it is heard only if it commits.

What a volunteer's socket hears:

* ``volunteer:<id>`` - offers, assignments and session updates meant for this person, from any
  instance (the router, a REST call, another volunteer's transfer);
* ``session:<id>`` for every session they hold - message hints from the chat service; the
  messages themselves are taken by seq from what this process's committer just stored, or else
  loaded from the database, so each is delivered once, in order;
* ``supervisors`` (supervisors only) - alerts;
* the instance's queue counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import QUEUE_CHANNEL, session_channel
from app.bus.base import Bus, Subscription
from app.chat import cards
from app.chat.committer import MessageCommitter, NewMessage
from app.chat.models import ChatSession, Message, Whisper
from app.core.config import Settings
from app.core.db import transaction, utcnow
from app.core.errors import BeaconError
from app.core.metrics import Metrics
from app.core.wire import ServerFrame
from app.core.wsloop import Action, Call, Send
from app.domain.mute import ActiveMute, withheld
from app.routing import (
    assignments,
    commands,
    consent_ask,
    frames,
    mutes,
    notify,
    presence,
    protocol,
    supervision,
)
from app.routing.accounts import Principal
from app.routing.assignments import SUPERVISORS_CHANNEL, OfferMade, volunteer_channel
from app.routing.models import Assignment
from app.routing.worker import RoutingWorker

log = structlog.get_logger(__name__)

SendText = Callable[[str], Awaitable[None]]


class Shown(Protocol):
    """What a message frame is made of: a stored row, or the committer's copy of one."""

    @property
    def seq(self) -> int: ...
    @property
    def sender(self) -> str: ...
    @property
    def text(self) -> str | None: ...
    @property
    def sent_at(self) -> datetime: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def level(self) -> int | None: ...
    @property
    def signals(self) -> Sequence[str] | None: ...
    @property
    def client_msg_id(self) -> str | None: ...


# What a mute withholds from one viewer: the session's active mute (None: none) and urgency.
ShieldState = tuple[ActiveMute | None, int]
_NOTHING_WITHHELD: ShieldState = (None, 0)  # no mute (and a supervisor's view: never any)


def message_frame(
    session_id: uuid.UUID, message: Shown, *, muted: bool = False
) -> frames.MessageOut:
    """``muted``: a muted visitor's message, its text withheld (app/domain/mute.py)."""
    triaged = message.level is not None
    shown, card = cards.wire_text(message.kind, message.text)
    return frames.MessageOut(
        session_id=str(session_id),
        seq=message.seq,
        sender=message.sender,
        text=None if muted else shown,
        resource=card,
        muted=True if muted else None,
        sent_at=message.sent_at.isoformat(),
        kind=message.kind,
        level=message.level,
        signals=list(message.signals or []) if triaged else None,
        client_msg_id=message.client_msg_id if message.sender == "volunteer" else None,
    )


class VolunteerLink:
    def __init__(
        self,
        *,
        principal: Principal,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        bus: Bus,
        worker: RoutingWorker,
        committer: MessageCommitter,
        metrics: Metrics,
        send: SendText,
    ) -> None:
        self.principal = principal
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.bus = bus
        self.worker = worker
        self.committer = committer
        self.metrics = metrics
        self._commands = commands.Context(bus, settings, metrics)
        self._send = send
        self._send_lock = asyncio.Lock()
        self.presence = "online"
        # Per held session: the highest seq this connection has sent (nothing is sent twice).
        self._delivered: dict[uuid.UUID, int] = {}
        self._held: dict[uuid.UUID, Subscription] = {}
        # Held only to watch (observe / join): not assignments of this person's.
        self._observing: set[uuid.UUID] = set()
        self._whispers_sent: dict[uuid.UUID, set[int]] = {}
        self._flush_locks: dict[uuid.UUID, asyncio.Lock] = {}
        # Per held session, what a mute withholds from this viewer, as last read; dropped when
        # the session's mute or urgency changes (ShieldChanged), so it is read again.
        self._shields: dict[uuid.UUID, ShieldState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscriptions: list[Subscription] = []
        self._last_heartbeat = 0.0
        self._attached = False  # counted in the instance's LocalSockets

    # -- lifecycle ---------------------------------------------------------------------------

    async def send(self, frame: ServerFrame | dict[str, Any]) -> None:
        await self._send_text(frames.raw_frame(frame) if isinstance(frame, dict) else frame.dump())

    async def _send_text(self, text: str) -> None:
        async with self._send_lock:
            await self._send(text)

    async def _run(self, actions: Sequence[Action]) -> None:
        """Carry out what app/routing/protocol decided a bus payload means."""
        for action in actions:
            if isinstance(action, Send):
                await self._send_text(action.text)
            elif isinstance(action, Call):
                await self._command(action.command)

    async def _command(self, command: protocol.LinkCommand) -> None:
        if isinstance(command, protocol.Snapshot):
            await self._snapshot({})
        elif isinstance(command, protocol.Hold):
            self._observing.discard(command.session_id)  # theirs now, not only watched
            try:
                await self._hold(command.session_id, 0)
            except BeaconError:
                # Already over (closed or passed on before this replay ran): nothing to hold.
                await self._let_go(command.session_id)
        elif isinstance(command, protocol.LetGo):
            if command.session_id not in self._observing:
                await self._let_go(command.session_id)
        elif isinstance(command, protocol.DeliverWhisper):
            await self._deliver_whisper(command.session_id, command.whisper_id)
        elif isinstance(command, protocol.ShieldChanged):
            self._shields.pop(command.session_id, None)
        else:
            await self._flush(command.session_id, purpose=None, upto=command.upto)

    async def start(self, resume_from: dict[uuid.UUID, int]) -> None:
        """Subscribe first, then read state: a change in between is heard, not lost. The pumps
        start only once ``ready`` is sent: whatever was heard meanwhile waits in its
        subscription, so ``ready`` is always the first frame after ``auth``."""
        personal = self.bus.subscribe(volunteer_channel(self.principal.id))
        self._subscriptions.append(personal)
        alerts = []
        if self.principal.is_supervisor:
            for channel in (SUPERVISORS_CHANNEL, QUEUE_CHANNEL):
                alerts.append(self.bus.subscribe(channel))
            self._subscriptions.extend(alerts)
        async with transaction(self.sessionmaker) as db:
            await presence.go_online(db, self.principal.id)
            await notify.publish(self.bus, [assignments.ROUTING_WAKE], db=db)
        self.worker.sockets.attach(self.principal.id)
        self._attached = True
        self._last_heartbeat = time.monotonic()
        await self.send(
            frames.ReadyOut(
                volunteer_id=str(self.principal.id),
                role=self.principal.role,
                name=self.principal.name,
                capacity=self.principal.capacity,
                languages=list(self.principal.languages),
            )
        )
        self._spawn(self._pump_personal(personal))
        for subscription in alerts:
            self._spawn(self._pump_alerts(subscription))
        await self._snapshot(resume_from)
        self._spawn(self._pump_queue())

    async def stop(self) -> None:
        for subscription in [*self._subscriptions, *self._held.values()]:
            subscription.close()
        for task in tuple(self._tasks):
            task.cancel()
        for task in tuple(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Offline now, unless another of their sockets is still open here; the router returns
        # this person's chats to the queue after the grace. (Open on another instance only:
        # that socket's next frame marks them online again, within the grace.)
        if self._attached:
            self._attached = False
            if not self.worker.sockets.detach(self.principal.id):
                return
        with contextlib.suppress(Exception):
            async with transaction(self.sessionmaker) as db:
                await presence.go_offline(db, self.principal.id)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _snapshot(self, resume_from: dict[uuid.UUID, int]) -> None:
        """Pending offers and held chats, after a (re)connect or a bus resync."""
        now = utcnow()
        async with transaction(self.sessionmaker) as db:
            rows = (
                await db.execute(
                    select(Assignment, ChatSession)
                    .join(ChatSession, ChatSession.id == Assignment.session_id)
                    .where(
                        Assignment.volunteer_id == self.principal.id,
                        Assignment.status.in_(("offered", "active")),
                    )
                    .order_by(Assignment.offered_at)
                )
            ).all()
        for assignment, session in rows:
            if assignment.status == "offered" and assignment.expires_at is not None:
                offer = OfferMade(
                    assignment_id=assignment.id,
                    session_id=session.id,
                    volunteer_id=self.principal.id,
                    urgency=session.urgency,
                    signals=list(session.signals or []),
                    waited_s=(now - session.waiting_since).total_seconds(),
                    expires_at=assignment.expires_at,
                    kind=assignment.kind,
                )
                await self.send(offer.frame(now))
            elif assignment.status == "active":
                if session.id not in self._held:
                    await self.send(assignments.assigned_frame(session, assignment.kind, now))
                await self._hold(session.id, resume_from.get(session.id, 0))

    # -- what the bus brings ------------------------------------------------------------------

    async def _pump(
        self, subscription: Subscription, handle: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> None:
        """One payload failing (a database hiccup, a chat that ended meanwhile) must not stop
        this socket from hearing the next offer: log it and go on."""
        async for payload in subscription:
            try:
                await handle(payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "volunteer_feed_error",
                    volunteer_id=str(self.principal.id),
                    channel=subscription.channel,
                    error_type=type(exc).__name__,
                )

    async def _pump_personal(self, subscription: Subscription) -> None:
        await self._pump(subscription, self._on_personal)

    async def _on_personal(self, payload: dict[str, Any]) -> None:
        await self._run(protocol.personal_event(payload))

    async def _pump_alerts(self, subscription: Subscription) -> None:
        await self._pump(subscription, lambda payload: self._on_alert(subscription, payload))

    async def _on_alert(self, subscription: Subscription, payload: dict[str, Any]) -> None:
        queue_channel = subscription.channel == QUEUE_CHANNEL
        await self._run(protocol.alert_event(payload, queue_channel=queue_channel))

    async def _pump_queue(self) -> None:
        listener = self.worker.queue.listen()
        try:
            await self.send(frames.QueueOut(counts=self.worker.queue.counts))
            while True:
                counts = await listener.get()
                await self.send(frames.QueueOut(counts=counts))
        finally:
            self.worker.queue.unlisten(listener)

    async def _pump_session(self, session_id: uuid.UUID, subscription: Subscription) -> None:
        await self._pump(subscription, lambda payload: self._on_session(session_id, payload))

    async def _on_session(self, session_id: uuid.UUID, payload: dict[str, Any]) -> None:
        await self._run(protocol.session_event(session_id, payload))

    async def _hold(
        self,
        session_id: uuid.UUID,
        from_seq: int,
        *,
        rewind: bool = False,
        purpose: str = "replay",
    ) -> None:
        """Deliver a session's messages after ``from_seq`` from now on. For a session already
        held, ``from_seq`` counts only when the client itself asks (``sync``, ``rewind``): a
        bus resync or a repeated ``assigned`` must never send a seq twice on this connection
        (a session's own resync may already have delivered past a snapshot's stale view)."""
        if session_id not in self._held:
            subscription = self.bus.subscribe(session_channel(session_id))
            self._held[session_id] = subscription
            self._spawn(self._pump_session(session_id, subscription))
            self._delivered[session_id] = from_seq
            await self._flush(session_id, purpose=purpose)
            await self._replay_whispers(session_id)
        elif rewind:
            await self._flush(session_id, purpose=purpose, rewind_to=from_seq)
        else:
            await self._flush(session_id, purpose=None)

    async def _let_go(self, session_id: uuid.UUID) -> None:
        subscription = self._held.pop(session_id, None)
        if subscription is not None:
            subscription.close()
        self._delivered.pop(session_id, None)
        self._flush_locks.pop(session_id, None)
        self._shields.pop(session_id, None)
        self._whispers_sent.pop(session_id, None)
        self._observing.discard(session_id)

    async def _replay_whispers(self, session_id: uuid.UUID) -> None:
        """Every staff note of a chat this connection starts holding or watching, after its
        messages; each note once per connection (the dashboard also drops repeats by id)."""
        async with transaction(self.sessionmaker) as db:
            rows = await supervision.replay_whispers(db, self.principal, session_id)
        sent = self._whispers_sent.setdefault(session_id, set())
        for row in rows:
            if row.id in sent or session_id not in self._held:
                continue
            sent.add(row.id)
            await self.send(self._whisper_frame(session_id, row))

    @staticmethod
    def _whisper_frame(session_id: uuid.UUID, row: Whisper) -> frames.WhisperOut:
        return frames.WhisperOut(
            session_id=str(session_id),
            whisper_id=row.id,
            author_id=row.author_id,
            author_role=row.author_role,
            client_msg_id=row.client_msg_id,
            text=row.text,
            sent_at=row.sent_at.isoformat(),
        )

    async def _deliver_whisper(self, session_id: uuid.UUID, whisper_id: int) -> None:
        """A staff note on a chat this socket holds or watches: loaded by id, sent once."""
        sent = self._whispers_sent.setdefault(session_id, set())
        if session_id not in self._held or whisper_id in sent:
            return
        async with transaction(self.sessionmaker) as db:
            row = await supervision.load_whisper(db, session_id, whisper_id)
        if row is None:
            return
        sent.add(whisper_id)
        await self.send(self._whisper_frame(session_id, row))

    async def _flush(
        self,
        session_id: uuid.UUID,
        *,
        purpose: str | None,
        rewind_to: int | None = None,
        upto: int | None = None,
    ) -> None:
        """Send every committed message after what this connection already sent (or after
        ``rewind_to``, applied under the lock so no concurrent flush can undo it). A replay of
        history (``purpose``) is a transcript read and is audited; live delivery is the chat.

        Live delivery of a hinted seq (``upto``) first takes what this process's committer just
        stored, when what a mute withholds is known too: no transaction per message and socket
        (measured: a quarter of the server's time with every chat held, docs/performance.md).
        Anything it does not have (stored by another instance, or aged out) is read below."""
        lock = self._flush_locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            if session_id not in self._delivered:
                return
            if rewind_to is not None:
                self._delivered[session_id] = min(self._delivered[session_id], rewind_to)
            if upto is not None and purpose is None and rewind_to is None:
                if upto <= self._delivered[session_id]:
                    return
                known = self._known_shield(session_id)
                if known is not None:
                    withholds = self._withholds(known)
                    first = self._delivered[session_id] + 1
                    for view in await self.committer.recent.read(session_id, first, upto):
                        await self._deliver(session_id, view, withholds)
                    if self._delivered.get(session_id, upto) >= upto:
                        return
            after = self._delivered[session_id]
            async with transaction(self.sessionmaker) as db:
                if purpose is not None:
                    _, messages = await assignments.read_transcript(
                        db, self.principal, session_id, after_seq=after, purpose=purpose
                    )
                else:
                    messages = list(
                        (
                            await db.scalars(
                                select(Message)
                                .where(Message.session_id == session_id, Message.seq > after)
                                .order_by(Message.seq)
                            )
                        ).all()
                    )
                shield = await self._shield(db, session_id)
            withholds = self._withholds(shield)
            for message in messages:
                await self._deliver(session_id, message, withholds)

    async def _deliver(
        self, session_id: uuid.UUID, message: Shown, withholds: Callable[[Shown], bool]
    ) -> None:
        if message.seq > self._delivered.get(session_id, message.seq):
            await self.send(message_frame(session_id, message, muted=withholds(message)))
            self._delivered[session_id] = message.seq

    def _known_shield(self, session_id: uuid.UUID) -> ShieldState | None:
        """What a mute withholds from this viewer, if known without reading it (None: read)."""
        if self.principal.is_supervisor:
            return _NOTHING_WITHHELD
        return self._shields.get(session_id)

    async def _shield(self, db: AsyncSession, session_id: uuid.UUID) -> ShieldState:
        """What a mute of this session withholds from this viewer (never a supervisor's view,
        never a high+ message: app/domain/mute.py), read now and remembered for the next
        messages until the session's mute or urgency changes."""
        if self.principal.is_supervisor:
            return _NOTHING_WITHHELD
        mute = await mutes.active_mute(db, session_id, utcnow())
        urgency = 0
        if mute is not None:
            urgency = (
                await db.scalar(select(ChatSession.urgency).where(ChatSession.id == session_id))
            ) or 0
        if session_id in self._held:
            self._shields[session_id] = (mute, urgency)
        return (mute, urgency)

    @staticmethod
    def _withholds(state: ShieldState) -> Callable[[Shown], bool]:
        mute, urgency = state
        if mute is None:
            return lambda _: False

        def shield(message: Shown) -> bool:
            return withheld(
                mute,
                now=utcnow(),  # a mute that ran out meanwhile withholds nothing more
                viewer_is_supervisor=False,
                sender=message.sender,
                level=message.level,
                session_urgency=urgency,
            )

        return shield

    # -- what the client asks -----------------------------------------------------------------

    async def heartbeat(self, *, force: bool = False) -> None:
        """Any frame proves the socket is alive; write it down at most every few seconds."""
        interval = min(5.0, self.settings.volunteer_heartbeat_timeout_s / 3)
        if not force and time.monotonic() - self._last_heartbeat < interval:
            return
        self._last_heartbeat = time.monotonic()
        async with transaction(self.sessionmaker) as db:
            await presence.heartbeat(db, self.principal.id, self.presence)

    async def handle(self, frame: frames.ClientFrame) -> None:
        """Run one client frame. Raises BeaconError for refusals (the router sends the error)."""
        if isinstance(frame, frames.PingFrame):
            await self.heartbeat()
            await self.send(frames.PongOut())
            return
        if isinstance(frame, frames.PresenceFrame):
            self.presence = frame.status
            async with transaction(self.sessionmaker) as db:
                await presence.go_online(db, self.principal.id, frame.status)
                await notify.publish(self.bus, [assignments.ROUTING_WAKE], db=db)
            self._last_heartbeat = time.monotonic()
            await self.send(frames.PresenceOut(status=frame.status))
            return
        await self.heartbeat()
        if isinstance(frame, frames.MessageFrame):
            await self._message(frame)
            return
        if isinstance(frame, frames.ObserveFrame | frames.UnobserveFrame | frames.JoinFrame):
            await self._supervise(frame)
            return
        if isinstance(frame, frames.WhisperFrame):
            await self._whisper(frame)
            return
        if isinstance(
            frame,
            frames.MuteFrame
            | frames.ConfirmMuteFrame
            | frames.CancelMuteFrame
            | frames.UnmuteFrame,
        ):
            async with transaction(self.sessionmaker) as db:
                answer = await mutes.from_frame(db, self.bus, self.principal, frame)
            await self.send(answer)
            return
        if isinstance(frame, frames.AskConsentFrame):
            seq = await consent_ask.run_ask(
                self.sessionmaker, self.committer, self.principal, frame.session_id
            )
            await self.send(frames.ConsentAskedOut(session_id=str(frame.session_id), seq=seq))
            return
        if isinstance(frame, frames.SyncFrame):
            async with transaction(self.sessionmaker) as db:
                await assignments.require_access(db, self.principal, frame.session_id, write=False)
            await self._hold(frame.session_id, frame.last_seq, rewind=True)
            return
        command = self._as_command(frame)
        async with transaction(self.sessionmaker) as db:
            await commands.execute(db, self._commands, self.principal, command)

    def _as_command(self, frame: frames.ClientFrame) -> commands.Command:
        """The frame as the command REST runs too (``app.routing.commands``)."""
        match frame:
            case frames.AcceptFrame():
                return commands.Accept(frame.session_id)
            case frames.DeclineFrame():
                return commands.Decline(frame.session_id)
            case frames.NextFrame():
                return commands.Next()
            case frames.ReleaseFrame():
                return commands.Release(frame.session_id)
            case frames.TransferFrame():
                return commands.Transfer(
                    frame.session_id, frame.to_volunteer_id, frame.to_supervisor
                )
            case frames.CloseFrame():
                return commands.Close(
                    frame.session_id, frame.disposition, frame.risk_value, frame.notes
                )
        raise frames.UnexpectedFrame(f"{frame.type} is not valid here")

    async def _supervise(
        self, frame: frames.ObserveFrame | frames.UnobserveFrame | frames.JoinFrame
    ) -> None:
        """Observe, stop observing, join (app/routing/supervision.py; each audited)."""
        sid = frame.session_id
        if isinstance(frame, frames.UnobserveFrame):
            if sid in self._observing:
                async with transaction(self.sessionmaker) as db:
                    supervision.stop_observing(db, self.principal, sid)
                await self._let_go(sid)
            await self.send(frames.SupervisionOut(session_id=str(sid), action="observe_ended"))
            return
        if isinstance(frame, frames.JoinFrame):
            joined = await supervision.run_join(
                self.sessionmaker, self.committer, self.principal, sid
            )
            action: Literal["observing", "joined"] = "joined"
            seq: int | None = joined.seq
            from_seq = 0
        else:
            async with transaction(self.sessionmaker) as db:
                await supervision.observe(db, self.principal, sid)
            action, seq, from_seq = "observing", None, frame.last_seq
        await self.send(frames.SupervisionOut(session_id=str(sid), action=action, seq=seq))
        if sid not in self._held:
            self._observing.add(sid)
            await self._hold(sid, from_seq, purpose="observe")

    async def _whisper(self, frame: frames.WhisperFrame) -> None:
        self._check_size(frame.text)
        async with transaction(self.sessionmaker) as db:
            stored = await supervision.whisper(
                db,
                self.bus,
                self.principal,
                frame.session_id,
                client_msg_id=frame.client_msg_id,
                text=frame.text,
            )
        await self.send(
            frames.WhisperAckOut(
                session_id=str(frame.session_id),
                client_msg_id=frame.client_msg_id,
                whisper_id=stored.whisper.id,
            )
        )

    def _check_size(self, text: str) -> None:
        text_bytes = len(text.encode("utf-8", "surrogatepass"))
        if text_bytes > self.settings.max_text_bytes:
            raise frames.TextTooLarge(
                f"text is {text_bytes} bytes; the limit is {self.settings.max_text_bytes}"
            )

    async def _message(self, frame: frames.MessageFrame) -> None:
        self._check_size(frame.text)
        async with transaction(self.sessionmaker) as db:
            await supervision.require_writer(db, self.principal, frame.session_id)
        # The chat side's group committer: the same per-session seq, resend dedup and
        # ack-after-commit as visitor messages get.
        stored = await self.committer.submit(
            NewMessage(
                session_id=frame.session_id,
                sender="volunteer",
                text=frame.text,
                client_msg_id=frame.client_msg_id,
                sender_id=self.principal.actor_id,
            )
        )
        seq = stored.seq
        # Acknowledged only now: submit() returns after the message is committed.
        await self.send(
            frames.AckOut(
                session_id=str(frame.session_id), client_msg_id=frame.client_msg_id, seq=seq
            )
        )
