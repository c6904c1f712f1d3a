"""Handoff edges: the partner's signed status callback, and escalation actions for dashboards
(handoff on request, two-step active rescue, handoff detail). Thin: read the request, call
``app.escalation``, return."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from app.core.errors import error_responses
from app.escalation import callbacks, commands, service
from app.escalation.errors import SupervisorsOnly
from app.escalation.schemas import CallbackAck, HandoffOut, RescueOut
from app.routers.deps import DbDep, Me, get_state

router = APIRouter(tags=["handoffs"])


@router.post(
    "/v1/handoffs/{handoff_id}/status",
    response_model=CallbackAck,
    responses=error_responses(400, 401, 404, 409, 422),
)
async def partner_status(handoff_id: uuid.UUID, request: Request, db: DbDep) -> CallbackAck:
    """Signed by the partner exactly like our webhook: ``X-Beacon-Timestamp`` and
    ``X-Beacon-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``."""
    state = get_state(request)
    handoff, update = await callbacks.receive(
        db,
        state.bus,
        state.escalation.partners,
        handoff_id,
        headers=request.headers,
        body=await request.body(),
        tolerance_s=state.settings.handoff_callback_tolerance_s,
    )
    state.escalation.observe_callback(update.status)
    return CallbackAck(handoff_id=handoff.id, status=handoff.status)


@router.get(
    "/v1/handoffs/{handoff_id}",
    response_model=HandoffOut,
    responses=error_responses(401, 403, 404, 422),
)
async def handoff_detail(handoff_id: uuid.UUID, db: DbDep, me: Me) -> HandoffOut:
    """Supervisors: a handoff and every delivery attempt (never the payload's secrets)."""
    if not me.is_supervisor:
        raise SupervisorsOnly("supervisors only")
    handoff = await service.get_handoff(db, handoff_id)
    return HandoffOut.of(handoff, list(await service.attempts_of(db, handoff_id)))


@router.post(
    "/v1/dashboard/sessions/{session_id}/handoff",
    response_model=HandoffOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def request_handoff(session_id: uuid.UUID, request: Request, db: DbDep, me: Me) -> HandoffOut:
    """Hand the session off to a hotline partner now (the volunteer holding it, or any
    supervisor). Asking again while one is under way returns that one."""
    state = get_state(request)
    handoff = await commands.request_handoff(db, state.bus, state.settings, me, session_id)
    state.escalation.wake()
    return HandoffOut.of(handoff)


@router.post(
    "/v1/dashboard/sessions/{session_id}/rescue",
    response_model=RescueOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def request_rescue(session_id: uuid.UUID, request: Request, db: DbDep, me: Me) -> RescueOut:
    """Supervisors, step one of two: request active rescue (audited; nothing is sent yet)."""
    rescue = await service.request_rescue(db, get_state(request).bus, me, session_id)
    return RescueOut.of(rescue)


@router.post(
    "/v1/dashboard/rescues/{rescue_id}/confirm",
    response_model=RescueOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def confirm_rescue(rescue_id: uuid.UUID, request: Request, db: DbDep, me: Me) -> RescueOut:
    """Supervisors, step two: confirm; the session is handed off now, flagged active rescue."""
    state = get_state(request)
    rescue = await service.decide_rescue(db, state.bus, state.settings, me, rescue_id, confirm=True)
    state.escalation.wake()
    return RescueOut.of(rescue)


@router.post(
    "/v1/dashboard/rescues/{rescue_id}/cancel",
    response_model=RescueOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def cancel_rescue(rescue_id: uuid.UUID, request: Request, db: DbDep, me: Me) -> RescueOut:
    state = get_state(request)
    rescue = await service.decide_rescue(
        db, state.bus, state.settings, me, rescue_id, confirm=False
    )
    return RescueOut.of(rescue)
