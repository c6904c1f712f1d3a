"""The one socket loop (app/core/wsloop.drive) with an in-memory transport: it feeds the real
visitor protocol, performs its actions in order, honours the hello deadline, and stops reading
once the protocol closes. The live server is exercised in tests/chat and tests/routing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from app.chat.protocol import Open, VisitorProtocol
from app.core.wsloop import Action, BinaryIn, Disconnected, Incoming, Performer, TextIn, drive


class MemoryTransport:
    def __init__(self, *incoming: Incoming) -> None:
        self.incoming: asyncio.Queue[Incoming] = asyncio.Queue()
        for item in incoming:
            self.incoming.put_nowait(item)
        self.sent: list[dict[str, Any]] = []
        self.closed: list[tuple[int, str]] = []

    async def receive(self) -> Incoming:
        return await self.incoming.get()

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def close(self, code: int, reason: str = "") -> None:
        self.closed.append((code, reason))


def visitor(now: float, hello_timeout_s: float = 10.0) -> VisitorProtocol:
    return VisitorProtocol(
        now=now,
        hello_timeout_s=hello_timeout_s,
        max_text_bytes=100,
        rate=100.0,
        burst=100,
        disconnect_after=100,
    )


async def test_commands_run_in_order_before_the_next_frame_is_read() -> None:
    hello, ping = TextIn('{"type":"hello"}'), TextIn('{"type":"ping"}')
    transport = MemoryTransport(hello, ping, Disconnected(1000))
    loop = asyncio.get_running_loop()
    protocol = visitor(loop.time())
    performed: list[str] = []

    async def perform(command: object) -> Sequence[Action]:
        assert isinstance(command, Open)
        performed.append("open")
        await asyncio.sleep(0.01)  # the ping waits for this
        protocol.opened(queueable=False)
        return []

    async def send(text: str) -> None:
        performed.append(json.loads(text)["type"])

    code = await drive(transport, protocol, Performer(send, transport.close, perform))
    assert code == 1000
    assert performed == ["open", "pong"]


async def test_hello_deadline_closes_and_nothing_more_is_read() -> None:
    transport = MemoryTransport()
    loop = asyncio.get_running_loop()
    protocol = visitor(loop.time(), hello_timeout_s=0.05)

    async def perform(command: object) -> Sequence[Action]:
        raise AssertionError("no command without a hello")

    code = await drive(transport, protocol, Performer(transport.send, transport.close, perform))
    assert code is None
    assert [f["code"] for f in transport.sent] == ["hello_timeout"]
    assert transport.closed == [(1008, "hello timeout")]


async def test_binary_frame_ends_the_loop_with_1003() -> None:
    transport = MemoryTransport(BinaryIn(), TextIn('{"type":"hello"}'))
    protocol = visitor(asyncio.get_running_loop().time())

    async def perform(command: object) -> Sequence[Action]:
        raise AssertionError("nothing is read after the close")

    await drive(transport, protocol, Performer(transport.send, transport.close, perform))
    assert transport.closed == [(1003, "binary frames are not supported")]
    assert transport.incoming.qsize() == 1
