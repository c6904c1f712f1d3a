"""Dashboard REST API for volunteers and supervisors (SPEC §6), Bearer volunteer token.

Thin: authenticate, validate, call ``app.routing``, publish what changed on the bus inside the
request's transaction (heard only if it commits), return the result.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.chat.frames import MAX_SEQ
from app.core.errors import error_responses
from app.feedback import service as feedback
from app.routers.deps import DbDep, Me, Supervisor, get_state
from app.routing import assignments, at_risk, commands, notify, presence, schemas, views
from app.routing.accounts import Principal
from app.routing.models import Volunteer
from app.triage.types import Level

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"])
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


def _ctx(request: Request) -> commands.Context:
    state = get_state(request)
    return commands.Context(state.bus, state.settings, state.metrics)


async def _run(
    request: Request, db: DbDep, me: Principal, command: commands.Command
) -> schemas.ActionResult:
    done = await commands.execute(db, _ctx(request), me, command)
    return schemas.ActionResult(session_id=done.session_id, status=done.status)


@router.post(
    "/sessions/{session_id}/claim",
    response_model=schemas.ActionResult,
    responses=error_responses(*_AUTH, 404, 409, 422),
)
async def claim(session_id: uuid.UUID, request: Request, db: DbDep, me: Me) -> schemas.ActionResult:
    """Take a waiting session (or accept one offered to you). 409 if someone was first."""
    return await _run(request, db, me, commands.Claim(session_id))


@router.post(
    "/next", response_model=schemas.ActionResult, responses=error_responses(*_AUTH, 404, 409)
)
async def next_session(request: Request, db: DbDep, me: Me) -> schemas.ActionResult:
    """Pull the most urgent waiting session you are eligible for (404 queue_empty if none)."""
    return await _run(request, db, me, commands.Next())


@router.post(
    "/sessions/{session_id}/release",
    response_model=schemas.ActionResult,
    responses=error_responses(*_AUTH, 404, 409, 422),
)
async def release(
    session_id: uuid.UUID, request: Request, db: DbDep, me: Me
) -> schemas.ActionResult:
    """Back to the queue, keeping its urgency and original wait."""
    return await _run(request, db, me, commands.Release(session_id))


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
    command = commands.Transfer(session_id, body.to_volunteer_id, body.to_supervisor)
    return await _run(request, db, me, command)


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
    command = commands.Close(session_id, body.disposition, body.risk_value, body.notes)
    return await _run(request, db, me, command)


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
    """Queue depth and longest waits by urgency, sessions by state, volunteer availability,
    and the post-chat survey's answers."""
    summary = await views.metrics_summary(db)
    return summary.model_copy(update={"survey": await feedback.summary(db)})


__all__ = ["router"]
