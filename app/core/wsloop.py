"""The one I/O loop behind both WebSocket endpoints, and the vocabulary their protocols speak.

A socket protocol (:mod:`app.chat.protocol` for visitors, :mod:`app.routing.protocol` for
volunteers) is a plain object in the shape of python-websockets' sans-I/O ``Protocol``: it is
fed what arrived (``receive(incoming, now)``) or that its deadline passed (``timeout(now)``)
and answers with a list of :data:`Action`\\ s. It never awaits, never touches a socket or the
database, so every frame rule is unit-tested with plain values (tests/protocols/).

:func:`drive` is everything that does I/O around it: wait for a frame (or the deadline), feed
the protocol, perform the actions in order. ``Send`` and ``Close`` it performs itself; a
``Call`` (a command: open a session, store a message, accept an offer...) goes to the socket's
``perform`` coroutine, which runs it and returns the actions that follow from its outcome. The
next frame is read only once every action of the previous one is done, so one connection's
frames are handled one at a time, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

C = TypeVar("C")


class ConnectionGone(Exception):
    """The peer is gone; nothing more can be sent."""


# -- what arrives ----------------------------------------------------------------------------


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


# -- what a protocol asks for ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    text: str  # one serialised server frame


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Call(Generic[C]):
    """Run a command (I/O: services, the committer); its outcome decides what follows."""

    command: C


Action = Send | Close | Call[Any]


class SocketProtocol(Protocol):
    @property
    def closing(self) -> bool:
        """A ``Close`` was asked for: read nothing more."""

    @property
    def deadline(self) -> float | None:
        """When :meth:`timeout` is due (monotonic seconds), if anything is awaited in time."""

    def receive(self, incoming: TextIn | BinaryIn, now: float) -> list[Action]: ...

    def timeout(self, now: float) -> list[Action]: ...


# -- the transport ---------------------------------------------------------------------------


class Transport(Protocol):
    async def receive(self) -> Incoming: ...

    async def send(self, text: str) -> None:
        """Raises :class:`ConnectionGone` if the peer has gone."""

    async def close(self, code: int, reason: str = "") -> None: ...


class StarletteTransport:
    """Starlette's WebSocket as a :class:`Transport`."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    @property
    def open(self) -> bool:
        return self._ws.application_state is WebSocketState.CONNECTED

    async def receive(self) -> Incoming:
        if self._ws.client_state is WebSocketState.DISCONNECTED:
            return Disconnected(code=1006)
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return Disconnected(code=1006)
        if message["type"] == "websocket.disconnect":
            return Disconnected(code=int(message.get("code") or 1005))
        text = message.get("text")
        if text is not None:
            return TextIn(text)
        return BinaryIn()

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise ConnectionGone from exc

    async def close(self, code: int, reason: str = "") -> None:
        if self._ws.application_state is WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self._ws.close(code, reason)


# -- the loop --------------------------------------------------------------------------------

SendText = Callable[[str], Awaitable[None]]
Perform = Callable[[Any], Awaitable[Sequence[Action]]]


@dataclass(frozen=True, slots=True)
class Performer:
    """How one socket carries out actions: where text goes (a visitor's feed orders it with
    deliveries), how it closes, and who runs its commands."""

    send: SendText
    close: Callable[[int, str], Awaitable[None]]
    perform: Perform

    async def run(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                await self.send(action.text)
            elif isinstance(action, Close):
                await self.close(action.code, action.reason)
            else:
                await self.run(await self.perform(action.command))


async def drive(
    transport: Transport,
    protocol: SocketProtocol,
    performer: Performer,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> int | None:
    """Feed ``protocol`` until it closes or the peer goes; the peer's close code if it went."""
    while not protocol.closing:
        deadline = protocol.deadline
        try:
            if deadline is None:
                incoming = await transport.receive()
            else:
                async with asyncio.timeout(max(0.0, deadline - clock())):
                    incoming = await transport.receive()
        except TimeoutError:
            await performer.run(protocol.timeout(clock()))
            continue
        if isinstance(incoming, Disconnected):
            return incoming.code
        await performer.run(protocol.receive(incoming, clock()))
    return None
