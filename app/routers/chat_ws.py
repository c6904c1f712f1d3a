"""``WS /v1/chat`` — the visitor socket (SPEC §6; every frame in docs/protocol.md).

Thin: hands Starlette's WebSocket, as a :class:`~app.core.wsloop.Transport`, to
:class:`~app.chat.connection.VisitorConnection`, which runs the visitor protocol over it.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.chat.admission import client_key
from app.chat.connection import ChatDeps, VisitorConnection
from app.core.wsloop import StarletteTransport
from app.state import state_of

router = APIRouter(tags=["chat"])


@router.websocket("/v1/chat")
async def visitor_chat(websocket: WebSocket) -> None:
    state = state_of(websocket)
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
        opener=state.opener,
    )
    # The address uvicorn reports: the X-Forwarded-For one when the peer is a trusted proxy.
    client = client_key(websocket.client.host if websocket.client else None)
    await VisitorConnection(StarletteTransport(websocket), deps, client=client).run()
