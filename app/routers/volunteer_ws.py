"""``WS /v1/volunteer``: the volunteer socket (protocol in docs/protocol.md, "Volunteer
WebSocket").

Thin: hands Starlette's WebSocket, as a :class:`~app.core.wsloop.Transport`, to
:class:`~app.routing.socket.VolunteerSocket`, which runs the volunteer protocol over it.
Invalid UTF-8 (1007) and oversize frames (1009) are closed by the WebSocket layer before they
reach that code.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, WebSocket

from app.core.wsloop import StarletteTransport
from app.escalation import commands as escalation_commands
from app.routing.accounts import Principal
from app.routing.socket import VolunteerDeps, VolunteerSocket
from app.state import state_of

router = APIRouter()


@router.websocket("/v1/volunteer")
async def volunteer_socket(websocket: WebSocket) -> None:
    state = state_of(websocket)
    await websocket.accept()

    async def handoff(me: Principal, session_id: uuid.UUID) -> dict[str, Any]:
        return await escalation_commands.over_socket(state, me, session_id)

    deps = VolunteerDeps(
        settings=state.settings,
        sessionmaker=state.sessionmaker,
        bus=state.bus,
        worker=state.routing,
        committer=state.committer,
        metrics=state.metrics,
        handoff=handoff,
    )
    await VolunteerSocket(StarletteTransport(websocket), deps).run()
