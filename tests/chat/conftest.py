"""Visitor-socket helpers: a thin client over the real ``websockets`` library."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.chat.models import Message
from tests.conftest import LiveServer

Frame = dict[str, Any]


class Visitor:
    """One visitor socket. ``frames`` keeps everything received, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, base_ws_url: str, **kwargs: Any) -> Visitor:
        ws = await connect(f"{base_ws_url}/v1/chat", open_timeout=10, **kwargs)
        return cls(ws)

    async def send(self, frame: Frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, wait_s: float = 10.0) -> Frame:
        raw = await asyncio.wait_for(self.ws.recv(), wait_s)
        frame: Frame = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def recv_until(self, type_: str, wait_s: float = 10.0, **match: Any) -> Frame:
        """Frames are kept in ``frames``; returns the first of ``type_`` matching ``match``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def told_position(self, position: int | None = None, wait_s: float = 10.0) -> Frame:
        """The first status frame, among those already read or still to come, that gives a
        queue position (``position``, if given): a push can arrive before or after an ack."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        seen = 0
        while True:
            for frame in self.frames[seen:]:
                given = frame.get("queue_position") if frame["type"] == "status" else None
                if given is not None and position in (None, given):
                    return frame
            seen = len(self.frames)
            await self.recv(max(0.01, deadline - loop.time()))

    async def hello(self, **fields: Any) -> Frame:
        await self.send({"type": "hello", "resume_token": None, "last_seq": None, **fields})
        return await self.recv_until("session")

    async def say(self, text: str, client_msg_id: str | None = None) -> Frame:
        cid = client_msg_id or uuid.uuid4().hex
        await self.send({"type": "message", "client_msg_id": cid, "text": text})
        return await self.recv_until("ack", client_msg_id=cid)

    async def closed(self, wait_s: float = 10.0) -> tuple[int | None, list[Frame]]:
        """Reads until the server closes; returns the close code and the frames read meanwhile."""
        seen: list[Frame] = []
        try:
            async with asyncio.timeout(wait_s):
                while True:
                    seen.append(await self.recv(wait_s))
        except ConnectionClosed:
            pass
        return self.ws.close_code, seen

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def chat_server(live_server_factory: Callable[..., Any]) -> LiveServer:
    """A real uvicorn with rate limits loose enough for scripted clients."""
    server: LiveServer = await live_server_factory(
        ws_rate_limit_per_s=1000.0, ws_rate_limit_burst=1000
    )
    return server


@pytest.fixture
async def visitor_factory(
    chat_server: LiveServer,
) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Visitor] = []

    async def make(server: LiveServer | None = None, **kwargs: Any) -> Visitor:
        visitor = await Visitor.connect((server or chat_server).ws_url, **kwargs)
        opened.append(visitor)
        return visitor

    yield make
    for visitor in opened:
        await visitor.ws.close()


async def stored_messages(engine: AsyncEngine, session_id: str) -> list[Message]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Message.__table__)
            .where(Message.session_id == uuid.UUID(session_id))
            .order_by(Message.seq)
        )
        return list(rows.all())  # type: ignore[arg-type]


async def events_for(engine: AsyncEngine, session_id: str) -> list[Any]:
    from app.audit.models import Event

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Event.__table__)
            .where(Event.subject_type == "session", Event.subject_id == session_id)
            .order_by(Event.id)
        )
        return list(rows.all())


async def end_live_sessions(engine: AsyncEngine) -> None:
    """Runs share one database: close whatever earlier tests left in the queue."""
    from sqlalchemy import update

    from app.chat.models import ChatSession

    async with engine.begin() as conn:
        await conn.execute(
            update(ChatSession)
            .where(ChatSession.status.not_in(("closed", "abandoned")))
            .values(status="closed")
        )


# The group committer's fixtures (tests/chat/committing.py), for every test module here.
from tests.chat.committing import committer_factory, sessionmaker  # noqa: E402, F401
