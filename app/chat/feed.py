"""Ordered, exactly-once delivery of one session's messages to one visitor connection.

The contract the client relies on (docs/protocol.md): every seq reaches a connection once, in
order, either as a ``message`` frame or — for the connection's own sends — as an ``ack``; a seq
appears only after every smaller seq has. So "the highest seq I have seen" is always a safe
``last_seq`` to resume from.

Bus hints only say "seq N exists"; the feed loads the gap from the database, which makes it
robust to hints that are lost, duplicated or reordered (and to a bus resync).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.chat import frames
from app.chat.committer import StoredMessage
from app.chat.recent import RecentMessages
from app.chat.service import MessageView, load_messages

SendText = Callable[[str], Awaitable[None]]
_PAGE = 500


class VisitorFeed:
    __slots__ = (
        "_awaiting",
        "_heard_seq",
        "_lock",
        "_recent",
        "_send",
        "_sessionmaker",
        "delivered_seq",
        "session_id",
    )

    def __init__(
        self,
        *,
        session_id: uuid.UUID,
        sessionmaker: async_sessionmaker[AsyncSession],
        send: SendText,
        delivered_seq: int,
        recent: RecentMessages | None = None,
    ) -> None:
        self.session_id = session_id
        self._sessionmaker = sessionmaker
        self._recent = recent
        self._send = send
        self._lock = asyncio.Lock()
        self.delivered_seq = delivered_seq
        self._heard_seq = delivered_seq
        # The client_msg_id this connection is waiting to have acked: its row is delivered as
        # the ack, never as a message frame.
        self._awaiting: str | None = None

    async def send(self, text: str) -> None:
        """Any other frame (status, error, pong): serialised with deliveries."""
        async with self._lock:
            await self._send(text)

    def expect_ack(self, client_msg_id: str | None) -> None:
        self._awaiting = client_msg_id

    async def catch_up(self) -> None:
        """Deliver everything committed after ``delivered_seq`` (replay on resume, resync)."""
        async with self._lock:
            await self._deliver(upto=None)

    def wants(self, payload: dict[str, Any]) -> bool:
        """Cheap, synchronous pre-filter for bus hints (see Subscription.accept): a hint for a
        seq already delivered, or for the ack that is on its way, needs no work at all."""
        if payload.get("kind") != "message":
            return True
        seq = payload.get("seq")
        if not isinstance(seq, int):
            return False
        if seq <= self.delivered_seq:
            return False
        own = (
            payload.get("sender") == "visitor"
            and self._awaiting is not None
            and payload.get("client_msg_id") == self._awaiting
        )
        if own and seq == self.delivered_seq + 1:
            self._heard_seq = max(self._heard_seq, seq)
            return False
        return True

    async def on_hint(self, seq: int, sender: str | None, client_msg_id: str | None) -> None:
        self._heard_seq = max(self._heard_seq, seq)
        if seq <= self.delivered_seq:
            return
        own = sender == "visitor" and client_msg_id is not None and client_msg_id == self._awaiting
        if own and seq == self.delivered_seq + 1:
            return  # the ack for it is on its way; no need to read anything
        async with self._lock:
            if seq > self.delivered_seq:
                await self._deliver(upto=self._heard_seq)

    async def acknowledge(self, stored: StoredMessage) -> None:
        assert stored.client_msg_id is not None
        async with self._lock:
            self._awaiting = None
            if stored.seq > self.delivered_seq:
                if stored.seq > self.delivered_seq + 1:
                    await self._deliver(upto=stored.seq - 1)
                await self._send(
                    frames.AckOut(client_msg_id=stored.client_msg_id, seq=stored.seq).dump()
                )
                self.delivered_seq = max(self.delivered_seq, stored.seq)
            else:
                # A resend of something this connection has already seen: answer, deliver nothing.
                await self._send(
                    frames.AckOut(client_msg_id=stored.client_msg_id, seq=stored.seq).dump()
                )
            if self._heard_seq > self.delivered_seq:
                await self._deliver(upto=self._heard_seq)

    async def _deliver(self, *, upto: int | None) -> None:
        """Caller holds the lock. Stops before the connection's own unacked message. With a
        known ``upto`` (a hint), this process's just-committed messages are used first."""
        if upto is not None and self._recent is not None:
            cached = await self._recent.read(self.session_id, self.delivered_seq + 1, upto)
            if not await self._send_rows(cached) or self.delivered_seq >= upto:
                return
        while True:
            async with self._sessionmaker() as db:
                rows = await load_messages(
                    db, self.session_id, after_seq=self.delivered_seq, upto_seq=upto, limit=_PAGE
                )
            if not await self._send_rows(rows) or len(rows) < _PAGE:
                return

    async def _send_rows(self, rows: list[MessageView]) -> bool:
        """Send in order; False if it stopped at the connection's own unacked message."""
        for row in rows:
            if (
                self._awaiting is not None
                and row.sender == "visitor"
                and row.client_msg_id == self._awaiting
            ):
                return False
            frame = frames.MessageOut.of(
                seq=row.seq,
                sender=row.sender,
                text=row.text,
                sent_at=row.sent_at,
                kind=row.kind,
                client_msg_id=row.client_msg_id if row.sender == "visitor" else None,
            )
            await self._send(frame.dump())
            self.delivered_seq = row.seq
        return True
