"""Handoff edges: the partner's signed status callback, and escalation actions for dashboards
(handoff on request, two-step active rescue, handoff detail). Thin: verify, validate, call
``app.escalation.service``, return."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from app.core.db import transaction
from app.core.errors import BadRequest, Unauthorized, error_responses
from app.escalation import service
from app.escalation.partners import select_partners
from app.escalation.schemas import CallbackAck, HandoffOut, PartnerStatus, RescueOut
from app.escalation.signing import SignatureError, verify
from app.routers.dashboard import current_volunteer
from app.routers.deps import DbDep, get_state
from app.routing.accounts import Principal

if TYPE_CHECKING:
    from app.main import AppState

router = APIRouter(tags=["handoffs"])
Me = Annotated[Principal, Depends(current_volunteer)]


class BadSignature(Unauthorized):
    code = "invalid_signature"


class StaleSignature(Unauthorized):
    code = "stale_timestamp"


class MissingSignature(Unauthorized):
    code = "missing_signature"


class InvalidCallback(BadRequest):
    code = "invalid_callback"


_SIGNATURE_ERRORS: dict[str, type[Unauthorized]] = {
    "invalid_signature": BadSignature,
    "stale_timestamp": StaleSignature,
    "missing_signature": MissingSignature,
}


@router.post(
    "/v1/handoffs/{handoff_id}/status",
    response_model=CallbackAck,
    responses=error_responses(400, 401, 404, 409, 422),
)
async def partner_status(handoff_id: uuid.UUID, request: Request, db: DbDep) -> CallbackAck:
    """Signed by the partner exactly like our webhook: ``X-Beacon-Timestamp`` and
    ``X-Beacon-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``."""
    state = get_state(request)
    body = await request.body()
    handoff = await service.get_handoff(db, handoff_id)
    partners = state.escalation.partners
    locale = await service.session_locale(db, handoff.session_id)
    allowed = await service.partners_of(db, handoff)
    allowed |= {p.name for p in select_partners(partners, locale, handoff.level)}
    signer: str | None = None
    error: SignatureError | None = None
    for partner in partners.partners if partners else []:
        if partner.name not in allowed:
            continue
        try:
            verify(
                partner.secret.get_secret_value(),
                timestamp=request.headers.get("X-Beacon-Timestamp"),
                signature=request.headers.get("X-Beacon-Signature"),
                body=body,
                tolerance_s=state.settings.handoff_callback_tolerance_s,
            )
        except SignatureError as exc:
            error = exc
            continue
        signer = partner.name
        break
    if signer is None:
        failure = error or SignatureError("invalid_signature", "no partner may sign this")
        raise _SIGNATURE_ERRORS[failure.code](failure.detail)
    try:
        update = PartnerStatus.model_validate_json(body)
    except ValidationError:
        raise InvalidCallback(
            'body must be {"status": "accepted|connected|failed", "reference": "..."}'
        ) from None
    handoff = await service.apply_partner_status(
        db,
        state.bus,
        handoff_id=handoff_id,
        status=update.status,
        partner=signer,
        reference=update.reference,
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
        raise service.SupervisorsOnly("supervisors only")
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
    handoff = await service.request_handoff(db, state.bus, state.settings, me, session_id)
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


async def over_socket(state: AppState, me: Principal, session_id: uuid.UUID) -> dict[str, Any]:
    """The volunteer socket's ``handoff`` frame: same rules as the REST call, own transaction."""
    async with transaction(state.sessionmaker) as db:
        handoff = await service.request_handoff(db, state.bus, state.settings, me, session_id)
    state.escalation.wake()
    return {
        "type": "handoff",
        "session_id": str(session_id),
        "handoff_id": str(handoff.id),
        "status": handoff.status,
        "trigger": handoff.trigger,
    }
