"""A small volunteer-socket client for tests: real `websockets`, frames as dicts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

Frame = dict[str, Any]


def about(session_id: str, **match: Any) -> Callable[[Frame], bool]:
    """A predicate: the frame is about this session (and has these field values)."""

    def check(frame: Frame) -> bool:
        return frame.get("session_id") == session_id and all(
            frame.get(k) == v for k, v in match.items()
        )

    return check


class _FrameClient:
    """Frames in and out of one real socket; frames not yet asked for wait in a buffer."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[Frame] = []
        self._buffer: list[Frame] = []

    async def send(self, frame: Frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def _next(self, wait_s: float) -> Frame:
        raw = await asyncio.wait_for(self.ws.recv(), timeout=wait_s)
        frame: Frame = json.loads(raw)
        self.seen.append(frame)
        return frame

    async def expect(
        self,
        frame_type: str,
        predicate: Callable[[Frame], bool] = lambda _: True,
        *,
        within: float = 10.0,
    ) -> Frame:
        """The first frame of that type matching ``predicate``; others are kept for later."""
        for i, frame in enumerate(self._buffer):
            if frame.get("type") == frame_type and predicate(frame):
                return self._buffer.pop(i)
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                frame = await self._next(remaining)
            except TimeoutError:
                # Say what did arrive: a refusal (an `error` frame) explains most timeouts.
                raise TimeoutError(
                    f"no {frame_type} frame within {within} s; buffered: {self._buffer[-10:]}"
                ) from None
            if frame.get("type") == frame_type and predicate(frame):
                return frame
            self._buffer.append(frame)

    async def drain(self, wait: float = 0.2) -> list[Frame]:
        """Everything that arrives within ``wait`` seconds (plus what was buffered)."""
        frames, self._buffer = self._buffer, []
        try:
            while True:
                frames.append(await self._next(wait))
        except TimeoutError:
            return frames

    async def close(self) -> None:
        await self.ws.close()


class VolunteerClient(_FrameClient):
    ready: Frame

    @classmethod
    async def connect(
        cls, ws_url: str, token: str, *, last_seq: dict[str, int] | None = None
    ) -> VolunteerClient:
        ws = await connect(f"{ws_url}/v1/volunteer")
        client = cls(ws)
        auth: Frame = {"type": "auth", "token": token}
        if last_seq:
            auth["last_seq"] = last_seq
        await client.send(auth)
        client.ready = await client.expect("ready")
        return client


class VisitorClient(_FrameClient):
    """A visitor on the real ``WS /v1/chat`` (only what these tests need)."""

    session_id: str = ""
    resume_token: str = ""

    @classmethod
    async def open(cls, ws_url: str, locale: str = "en") -> VisitorClient:
        client = cls(await connect(f"{ws_url}/v1/chat"))
        await client.send(
            {"type": "hello", "resume_token": None, "last_seq": None, "locale": locale}
        )
        session = await client.expect("session")
        client.session_id = session["session_id"]
        client.resume_token = session["resume_token"]
        return client

    @classmethod
    async def resume(cls, ws_url: str, resume_token: str, last_seq: int = 0) -> VisitorClient:
        client = cls(await connect(f"{ws_url}/v1/chat"))
        await client.send({"type": "hello", "resume_token": resume_token, "last_seq": last_seq})
        session = await client.expect("session")
        client.session_id = session["session_id"]
        client.resume_token = resume_token
        return client

    async def drain(self, wait: float = 0.3) -> list[Frame]:
        return await super().drain(wait)

    async def say(self, text: str, client_msg_id: str) -> Frame:
        await self.send({"type": "message", "client_msg_id": client_msg_id, "text": text})
        return await self.expect("ack", lambda f: f["client_msg_id"] == client_msg_id)
