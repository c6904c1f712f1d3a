"""Dashboard REST API for volunteers and supervisors (SPEC §6), Bearer volunteer token.

Thin: authenticate, validate, call ``app.routing``, publish what changed on the bus inside the
request's transaction (heard only if it commits), return the result.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.chat.frames import MAX_SEQ
from app.core.db import utcnow
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.routers.deps import DbDep, get_db, get_state
from app.routing import accounts, assignments, at_risk, dispatch, notify, presence, schemas, views
from app.routing.accounts import Principal
from app.routing.models import Volunteer
from app.triage.types import Level

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"])
_bearer = HTTPBearer(auto_error=False, description="a volunteer token from `beacon volunteer add`")


async def current_volunteer(
    db: DbDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return await accounts.authenticate(db, credentials.credentials)


async def current_supervisor(
    principal: Annotated[Principal, Depends(current_volunteer)],
) -> Principal:
    if not principal.is_supervisor:
        raise Forbidden("supervisors only")
    return principal


Me = Annotated[Principal, Depends(current_volunteer)]
Supervisor = Annotated[Principal, Depends(current_supervisor)]
_AUTH = (401, 403)


@router.get("/queue", response_model=schemas.QueueListing, responses=error_responses(*_AUTH, 422))
async def queue(
    request: Request,
    db: DbDep,
    me: Me,
    urgency: Annotated[str | None, Query(pattern="^(none|low|moderate|high|imminent)$")] = None,
    language: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> schemas.QueueListing:
    """Waiting sessions in effective-priority order (no message text)."""
    return await views.queue_listing(
        db,
        get_state(request).settings,
        urgency=int(Level[urgency]) if urgency else None,
        language=language,
        limit=limit,
    )


@router.get("/sessions", response_model=schemas.SessionList, responses=error_responses(*_AUTH))
async def sessions(db: DbDep, me: Me) -> schemas.SessionList:
    """Supervisors: every live session. Volunteers: those offered to or held by them."""
    return await views.live_sessions(db, me)


@router.get(
    "/sessions/{session_id}",
    response_model=schemas.SessionDetail,
    responses=error_responses(*_AUTH, 404, 422),
)
async def session_detail(
    session_id: uuid.UUID,
    db: DbDep,
    me: Me,
    after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
) -> schemas.SessionDetail:
    """Detail and transcript. Rights-checked; every read is recorded in the audit log."""
    session, messages = await assignments.read_transcript(
        db, me, session_id, after_seq=after_seq, purpose="dashboard"
    )
    summary = views.summary(session, await views.holder_of(db, session_id))
    return schemas.SessionDetail(**summary.model_dump(), transcript=views.transcript(messages))


def _result(session_id: uuid.UUID, status: str) -> schemas.ActionResult:
    return schemas.ActionResult(session_id=session_id, status=status)


@router.post(
    "/sessions/{session_id}/claim",
    response_model=schemas.ActionResult,
    responses=error_responses(*_AUTH, 404, 409, 422),
)
async def claim(session_id: uuid.UUID, request: Request, db: DbDep, me: Me) -> schemas.ActionResult:
    """Take a waiting session (or accept one offered to you). 409 if someone was first."""
    session, notices = await assignments.claim(
        db,
        me,
        session_id,
        high_urgency_slots=get_state(request).settings.high_urgency_slots,
    )
    await notify.publish(get_state(request).bus, notices, db=db)
    notify.observe_answered(get_state(request).metrics, session)
    return _result(session.id, session.status)


@router.post(
    "/next", response_model=schemas.ActionResult, responses=error_responses(*_AUTH, 404, 409)
)
async def next_session(request: Request, db: DbDep, me: Me) -> schemas.ActionResult:
    """Pull the most urgent waiting session you are eligible for (404 queue_empty if none)."""
    settings = get_state(request).settings
    now = utcnow()
    queue = await dispatch.waiting_sessions(db, settings)
    candidates = [s.id for s in queue if dispatch.eligible(s, me.languages, now, settings)]
    session, notices = await assignments.next_session(
        db, me, candidates, high_urgency_slots=settings.high_urgency_slots, now=now
    )
    await notify.publish(get_state(request).bus, notices, db=db)
    notify.observe_answered(get_state(request).metrics, session)
    return _result(session.id, session.status)


@router.post(
    "/sessions/{session_id}/release",
    response_model=schemas.ActionResult,
    responses=error_responses(*_AUTH, 404, 409, 422),
)
async def release(
    session_id: uuid.UUID, request: Request, db: DbDep, me: Me
) -> schemas.ActionResult:
    """Back to the queue, keeping its urgency and original wait."""
    notices = await assignments.release_by(db, me, session_id)
    await notify.publish(get_state(request).bus, notices, db=db)
    return _result(session_id, "waiting")


@router.post(
    "/sessions/{session_id}/transfer",
    response_model=schemas.ActionResult,
    responses=error_responses(400, *_AUTH, 404, 409, 422),
)
async def transfer(
    session_id: uuid.UUID,
    body: schemas.TransferRequest,
    request: Request,
    db: DbDep,
    me: Me,
) -> schemas.ActionResult:
    """Warm to a named volunteer or any free supervisor (you stay until they accept); with
    neither, cold back to the queue at its priority."""
    state = get_state(request)
    made, notices = await assignments.transfer(
        db,
        me,
        session_id,
        to_volunteer_id=body.to_volunteer_id,
        to_supervisor=body.to_supervisor,
        timeout_s=state.settings.offer_timeout_s,
        high_urgency_slots=state.settings.high_urgency_slots,
    )
    await notify.publish(state.bus, notices, db=db)
    return _result(session_id, "transferring" if made else "waiting")


@router.post(
    "/sessions/{session_id}/close",
    response_model=schemas.ActionResult,
    responses=error_responses(400, *_AUTH, 404, 409, 422),
)
async def close(
    session_id: uuid.UUID,
    body: schemas.CloseRequest,
    request: Request,
    db: DbDep,
    me: Me,
) -> schemas.ActionResult:
    """Wrap-up with a disposition and your risk assessment (which becomes the urgency)."""
    notices = await assignments.close(
        db,
        me,
        session_id,
        disposition=body.disposition,
        risk_level=body.risk_value,
        notes=body.notes,
    )
    await notify.publish(get_state(request).bus, notices, db=db)
    return _result(session_id, "closed")


@router.get("/me", response_model=schemas.VolunteerStatus, responses=error_responses(*_AUTH))
async def me_status(db: DbDep, me: Me) -> schemas.VolunteerStatus:
    volunteer = await db.get(Volunteer, me.id)
    assert volunteer is not None  # authenticate() just read it
    return await views.volunteer_status(db, volunteer)


@router.put(
    "/me/presence",
    response_model=schemas.VolunteerStatus,
    responses=error_responses(400, *_AUTH, 422),
)
async def set_presence(
    body: schemas.PresenceRequest, request: Request, db: DbDep, me: Me
) -> schemas.VolunteerStatus:
    """Dashboards without a socket (or a socket that wants to go offline at once)."""
    if body.status == "offline":
        await presence.go_offline(db, me.id)
    else:
        await presence.go_online(db, me.id, body.status)
        await notify.publish(get_state(request).bus, [assignments.ROUTING_WAKE], db=db)
    volunteer = await db.get(Volunteer, me.id, populate_existing=True)
    assert volunteer is not None
    return await views.volunteer_status(db, volunteer)


@router.get("/volunteers", response_model=schemas.VolunteerList, responses=error_responses(*_AUTH))
async def volunteer_list(db: DbDep, supervisor: Supervisor) -> schemas.VolunteerList:
    """Supervisors: everyone's presence, load and sessions."""
    return await views.volunteers(db)


@router.get("/at-risk", response_model=at_risk.AtRiskList, responses=error_responses(*_AUTH))
async def at_risk_sessions(
    request: Request, db: DbDep, supervisor: Supervisor
) -> at_risk.AtRiskList:
    """Supervisors: `high`+ sessions whose visitor has been gone past the grace period. Software
    never closes these (SPEC §3); they stay in their state until a person acts."""
    return await at_risk.listing(db, grace_s=get_state(request).settings.visitor_grace_s)


@router.get("/metrics", response_model=schemas.MetricsSummary, responses=error_responses(*_AUTH))
async def metrics_summary(db: DbDep, me: Me) -> schemas.MetricsSummary:
    """Queue depth and longest waits by urgency, sessions by state, volunteer availability."""
    return await views.metrics_summary(db)


__all__ = ["current_volunteer", "get_db", "router"]
