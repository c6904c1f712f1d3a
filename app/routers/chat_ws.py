"""``WS /v1/chat`` — the visitor socket (SPEC §6; every frame in docs/protocol.md).

Thin: adapts Starlette's WebSocket to :class:`app.chat.connection.Transport` and hands over to
:class:`~app.chat.connection.VisitorConnection`, which validates frames and calls the services.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from app.chat.admission import client_key
from app.chat.connection import (
    BinaryIn,
    ChatDeps,
    ConnectionGone,
    Disconnected,
    Incoming,
    TextIn,
    VisitorConnection,
)

router = APIRouter(tags=["chat"])


class StarletteTransport:
    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def receive(self) -> Incoming:
        if self._ws.client_state is WebSocketState.DISCONNECTED:
            return Disconnected(code=1006)
        message = await self._ws.receive()
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


@router.websocket("/v1/chat")
async def visitor_chat(websocket: WebSocket) -> None:
    state = websocket.app.state.beacon
    await websocket.accept()
    deps = ChatDeps(
        settings=state.settings,
        sessionmaker=state.sessionmaker,
        bus=state.bus,
        committer=state.committer,
        queue=state.queue,
        presence=state.visitors,
        metrics=state.metrics,
        session_opens=state.session_opens,
    )
    # The address uvicorn reports: the X-Forwarded-For one when the peer is a trusted proxy.
    client = client_key(websocket.client.host if websocket.client else None)
    await VisitorConnection(StarletteTransport(websocket), deps, client=client).run()
