"""``WS /v1/volunteer``: authenticate, parse frames, hand them to the volunteer's live link.

Protocol in docs/protocol.md ("Volunteer WebSocket"). Bad input gets an ``error`` frame with a
stable code and the connection stays open; only a failed/late auth (1008), a binary frame
(1003), a flood (1008) or a database that is away while connecting (1013) end it. Invalid
UTF-8 (1007) and oversize frames (1009) are closed by the WebSocket layer before they reach
this code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket
from sqlalchemy.exc import DBAPIError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from app.chat.frames import CloseCode
from app.chat.ratelimit import FrameRateLimiter, Verdict
from app.core.db import transaction
from app.core.errors import BeaconError, Unauthorized
from app.routers import handoffs
from app.routing import accounts, frames
from app.routing.live import VolunteerLink, error_frame

router = APIRouter()
log = structlog.get_logger(__name__)


async def _send_json(websocket: WebSocket, frame: dict[str, Any]) -> None:
    await websocket.send_text(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))


async def _refuse(websocket: WebSocket, code: str, detail: str, close_code: int) -> None:
    with contextlib.suppress(Exception):
        await _send_json(websocket, {"type": "error", "code": code, "detail": detail})
        await websocket.close(close_code)


# What a database call raises while Postgres is away: a DBAPIError from the driver, or the
# OSError of a refused connection (the pool opens connections outside the driver's wrapping).
_DATABASE_DOWN = (DBAPIError, OSError)


async def _database_down(websocket: WebSocket, exc: Exception) -> None:
    log.warning("volunteer_connect_db_error", error_type=type(exc).__name__)
    await _refuse(
        websocket,
        "temporarily_unavailable",
        "the database did not answer; reconnect shortly",
        1013,  # try again later
    )


async def _refuse_binary(websocket: WebSocket) -> None:
    await _refuse(
        websocket, "binary_not_supported", "send JSON text frames", CloseCode.unsupported_data
    )


def _frame_context(frame: frames.ClientFrame | None) -> dict[str, Any]:
    """Echo which session/message an error is about, so the client can match it up."""
    extra: dict[str, Any] = {}
    session_id = getattr(frame, "session_id", None)
    if session_id is not None:
        extra["session_id"] = str(session_id)
    client_msg_id = getattr(frame, "client_msg_id", None)
    if client_msg_id is not None:
        extra["client_msg_id"] = client_msg_id
    return extra


@router.websocket("/v1/volunteer")
async def volunteer_socket(websocket: WebSocket) -> None:
    state = websocket.app.state.beacon
    settings = state.settings
    await websocket.accept()
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout=settings.hello_timeout_s)
    except TimeoutError:
        await _refuse(
            websocket, "auth_timeout", "send an auth frame first", CloseCode.policy_violation
        )
        return
    except (WebSocketDisconnect, RuntimeError):
        return
    if message["type"] == "websocket.disconnect":
        return
    raw = message.get("text")
    if raw is None:
        # A binary first frame is refused like a binary frame after auth, not dropped (1006).
        await _refuse_binary(websocket)
        return
    try:
        first = frames.parse_client_frame(raw)
        if not isinstance(first, frames.AuthFrame):
            raise Unauthorized("the first frame must be auth")
        async with transaction(state.sessionmaker) as db:
            principal = await accounts.authenticate(db, first.token)
    except BeaconError as exc:
        await _refuse(websocket, exc.code, str(exc.detail), CloseCode.policy_violation)
        return
    except _DATABASE_DOWN as exc:
        await _database_down(websocket, exc)
        return

    async def send(frame: dict[str, Any]) -> None:
        if websocket.application_state is WebSocketState.CONNECTED:
            await _send_json(websocket, frame)

    link = VolunteerLink(
        principal=principal,
        sessionmaker=state.sessionmaker,
        settings=settings,
        bus=state.bus,
        worker=state.routing,
        committer=state.committer,
        metrics=state.metrics,
        send=send,
    )
    limiter = FrameRateLimiter(
        rate=settings.volunteer_ws_rate_limit_per_s,
        burst=settings.volunteer_ws_rate_limit_burst,
        disconnect_after=settings.volunteer_ws_flood_disconnect_after,
    )
    state.metrics.connected_volunteers.inc()
    log.info("volunteer_connected", volunteer_id=str(principal.id), role=principal.role)
    try:
        try:
            await link.start(first.last_seq)
        except _DATABASE_DOWN as exc:
            await _database_down(websocket, exc)
            return
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") is None:
                await _refuse_binary(websocket)
                break
            verdict = limiter.check()
            if verdict is Verdict.disconnect:
                await _refuse(
                    websocket, "rate_limited", "too many frames", CloseCode.policy_violation
                )
                break
            frame: frames.ClientFrame | None = None
            try:
                if verdict is Verdict.reject:
                    raise RateLimitedFrame("too many frames; slow down")
                frame = frames.parse_client_frame(message["text"])
                if isinstance(frame, frames.AuthFrame):
                    raise frames.UnexpectedFrame("already authenticated")
                if isinstance(frame, frames.HandoffFrame):
                    await send(await handoffs.over_socket(state, principal, frame.session_id))
                else:
                    await link.handle(frame)
            except BeaconError as exc:
                await send(error_frame(exc, **_frame_context(frame)))
            except _DATABASE_DOWN as exc:
                log.warning("volunteer_frame_db_error", error_type=type(exc).__name__)
                await send(
                    {
                        "type": "error",
                        "code": "temporarily_unavailable",
                        "detail": "the database did not answer; retry",
                        **_frame_context(frame),
                    }
                )
    except WebSocketDisconnect:
        pass
    finally:
        state.metrics.connected_volunteers.dec()
        await link.stop()
        log.info("volunteer_disconnected", volunteer_id=str(principal.id))


class RateLimitedFrame(BeaconError):
    status_code = 429
    code = "rate_limited"
