"""A visitor client that follows docs/protocol.md to the letter, and checks the server does too.

It keeps every unacked message and resends it (same ``client_msg_id``) after any reconnect,
resumes with the highest seq it has seen, and asserts on every frame that one connection never
skips or repeats a seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

Frame = dict[str, Any]
_RETRYABLE = (ConnectionClosed, OSError, TimeoutError, InvalidHandshake, InvalidStatus)


class ProtocolViolation(AssertionError):
    pass


@dataclass
class ResilientVisitor:
    name: str
    texts: list[str]
    url: Callable[[], str]
    rng: random.Random
    drop_probability: float = 0.0
    pause_s: float = 0.0
    token: str | None = None
    session_id: str | None = None
    last_seq: int = 0
    # seq -> (sender, text, client_msg_id) as seen by this client
    transcript: dict[int, tuple[str, str | None, str | None]] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    drops: int = 0
    resends: int = 0
    errors: list[Frame] = field(default_factory=list)
    # The close code the server sent, per connection that ended (None: none was received).
    close_codes: list[int | None] = field(default_factory=list)
    _sent: set[str] = field(default_factory=set)

    def cid(self, index: int) -> str:
        return f"{self.name}-{index}"

    @property
    def done(self) -> bool:
        return len(self.acked) == len(self.texts)

    async def run(self, deadline_s: float = 120.0) -> None:
        async with asyncio.timeout(deadline_s):
            while not self.done:
                try:
                    await self._one_connection()
                except _RETRYABLE:
                    await asyncio.sleep(0.05 + self.rng.random() * 0.1)

    # -- one connection ----------------------------------------------------------------------

    async def _one_connection(self) -> None:
        self.connections += 1
        ws = await connect(f"{self.url()}/v1/chat", open_timeout=5, close_timeout=1)
        try:
            await self._converse(ws)
        finally:
            await ws.close()
            self.close_codes.append(ws.close_code)

    async def _converse(self, ws: ClientConnection) -> None:
        await ws.send(
            json.dumps({"type": "hello", "resume_token": self.token, "last_seq": self.last_seq})
        )
        session = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if session["type"] != "session":
            raise ProtocolViolation(f"{self.name}: expected session, got {session}")
        if self.session_id is not None and session["session_id"] != self.session_id:
            raise ProtocolViolation(f"{self.name}: resumed into another session")
        self.token, self.session_id = session["resume_token"], session["session_id"]
        acks: dict[str, asyncio.Event] = {}
        reader = asyncio.create_task(self._read(ws, acks))
        try:
            for index, text in enumerate(self.texts):
                cid = self.cid(index)
                if cid in self.acked:
                    continue
                await self._send_one(ws, reader, acks, cid, text)
                if self.pause_s:
                    await asyncio.sleep(self.rng.random() * self.pause_s)
                if self.rng.random() < self.drop_probability / 2:
                    self.drops += 1
                    return  # a clean close between messages
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_RETRYABLE):
                await reader

    async def _send_one(
        self,
        ws: ClientConnection,
        reader: asyncio.Task[None],
        acks: dict[str, asyncio.Event],
        cid: str,
        text: str,
    ) -> None:
        event = acks.setdefault(cid, asyncio.Event())
        if cid in self._sent:
            self.resends += 1
        self._sent.add(cid)
        await ws.send(json.dumps({"type": "message", "client_msg_id": cid, "text": text}))
        if self.rng.random() < self.drop_probability / 2:
            # Gone before the ack: the message may or may not be committed.
            self.drops += 1
            ws.transport.abort()
            raise ConnectionClosed(None, None)
        waiter = asyncio.create_task(event.wait())
        done, _ = await asyncio.wait({waiter, reader}, timeout=15, return_when="FIRST_COMPLETED")
        if waiter not in done:
            waiter.cancel()
            if reader in done:
                reader.result()  # raises what ended the reader
            raise TimeoutError(f"{self.name}: no ack for {cid}")

    async def _read(self, ws: ClientConnection, acks: dict[str, asyncio.Event]) -> None:
        async for raw in ws:
            frame: Frame = json.loads(raw)
            kind = frame["type"]
            if kind == "message":
                self._take(frame["seq"], frame["sender"], frame["text"], frame.get("client_msg_id"))
                cid = frame.get("client_msg_id")
                if frame["sender"] == "visitor" and cid is not None and cid.startswith(self.name):
                    # Our own message, replayed: it is stored, no need to resend it.
                    self._record_ack(cid, frame["seq"])
                    acks.setdefault(cid, asyncio.Event()).set()
            elif kind == "ack":
                cid, seq = frame["client_msg_id"], frame["seq"]
                if seq > self.last_seq:
                    self._take(seq, "visitor", self.texts[int(cid.rsplit("-", 1)[1])], cid)
                elif self.transcript.get(seq, ("", None, cid))[2] != cid:
                    raise ProtocolViolation(f"{self.name}: ack {seq} names another message")
                self._record_ack(cid, seq)
                acks.setdefault(cid, asyncio.Event()).set()
            elif kind == "error":
                self.errors.append(frame)

    def _take(self, seq: int, sender: str, text: str | None, cid: str | None) -> None:
        if seq != self.last_seq + 1:
            raise ProtocolViolation(f"{self.name}: got seq {seq} after {self.last_seq}")
        self.transcript[seq] = (sender, text, cid)
        self.last_seq = seq

    def _record_ack(self, cid: str, seq: int) -> None:
        previous = self.acked.setdefault(cid, seq)
        if previous != seq:
            raise ProtocolViolation(f"{self.name}: {cid} acked as {previous} and {seq}")

    # -- verification ------------------------------------------------------------------------

    async def full_replay(self) -> list[Frame]:
        """Resume with last_seq=0 and read the whole transcript back."""
        async with connect(f"{self.url()}/v1/chat", open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "hello", "resume_token": self.token, "last_seq": 0}))
            session = json.loads(await asyncio.wait_for(ws.recv(), 10))
            messages: list[Frame] = []
            while len(messages) < session["last_seq"]:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "message":
                    messages.append(frame)
            return messages
