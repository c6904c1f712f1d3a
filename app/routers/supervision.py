"""Supervision over REST (issue 14): join a chat, whisper to the volunteer, read the whispers,
mute an abusive visitor (two steps at high+).
Observing is the volunteer socket's ``observe`` frame (a live stream has no REST form; the
audited ``GET /v1/dashboard/sessions/{id}`` is the one-off read). Thin: call
``app.routing.supervision``, return."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.core.errors import error_responses
from app.routers.deps import DbDep, Me, get_state
from app.routing import consent_ask, mutes, supervision
from app.routing.frames import TextTooLarge
from app.routing.mute_schemas import MuteRequest, MuteView
from app.routing.supervision_schemas import (
    ConsentAsked,
    JoinResult,
    WhisperList,
    WhisperRequest,
    WhisperView,
)

router = APIRouter(prefix="/v1/dashboard", tags=["supervision"])


@router.post(
    "/sessions/{session_id}/join",
    response_model=JoinResult,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def join(session_id: uuid.UUID, request: Request, me: Me) -> JoinResult:
    """Supervisors: join the chat visibly (the visitor's transcript shows a system line), after
    which they may write into it. Asking again changes nothing. Audited."""
    state = get_state(request)
    # Not the request's transaction: the system line's commit locks the session row, and must
    # not wait for a transaction this handler holds (see supervision.run_join).
    joined = await supervision.run_join(state.sessionmaker, state.committer, me, session_id)
    return JoinResult(session_id=session_id, joined=True, seq=joined.seq)


@router.post(
    "/sessions/{session_id}/whispers",
    response_model=WhisperView,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
async def whisper(
    session_id: uuid.UUID, body: WhisperRequest, request: Request, db: DbDep, me: Me
) -> WhisperView:
    """A note only staff on the chat see (supervisors on any live chat, the volunteer on the
    chat they hold); never in the visitor's transcript. A resend with the same
    ``client_msg_id`` returns the first one (``duplicate: true``). Audited."""
    state = get_state(request)
    size = len(body.text.encode("utf-8", "surrogatepass"))
    if size > state.settings.max_text_bytes:
        raise TextTooLarge(f"text is {size} bytes; the limit is {state.settings.max_text_bytes}")
    stored = await supervision.whisper(
        db, state.bus, me, session_id, client_msg_id=body.client_msg_id, text=body.text
    )
    return WhisperView.of(stored.whisper, duplicate=stored.duplicate)


@router.get(
    "/sessions/{session_id}/whispers",
    response_model=WhisperList,
    responses=error_responses(401, 403, 404, 422),
)
async def whispers(
    session_id: uuid.UUID,
    db: DbDep,
    me: Me,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> WhisperList:
    """The staff notes on a chat (rights as for its transcript); the read is audited."""
    rows = await supervision.whispers_of(db, me, session_id, after_id=after_id)
    return WhisperList(session_id=session_id, whispers=[WhisperView.of(r) for r in rows])


@router.post(
    "/sessions/{session_id}/mute",
    response_model=MuteView,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def mute(
    session_id: uuid.UUID, body: MuteRequest, request: Request, db: DbDep, me: Me
) -> MuteView:
    """Supervisors: shield the volunteer from an abusive visitor for ``duration_s`` (the visitor's
    messages are still stored, triaged and escalated). A session at ``high`` or above gets a
    ``requested`` mute that a second supervisor must confirm. Audited."""
    row = await mutes.request_mute(
        db, get_state(request).bus, me, session_id, duration_s=body.duration_s, reason=body.reason
    )
    return MuteView.of(row)


@router.delete(
    "/sessions/{session_id}/mute",
    response_model=MuteView,
    responses=error_responses(401, 403, 404, 422),
)
async def unmute(session_id: uuid.UUID, request: Request, db: DbDep, me: Me) -> MuteView:
    """Supervisors: end the session's active mute now (``404 mute_not_found`` if none)."""
    return MuteView.of(await mutes.lift_mute(db, get_state(request).bus, me, session_id))


@router.post(
    "/mutes/{mute_id}/confirm",
    response_model=MuteView,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def confirm_mute(mute_id: uuid.UUID, request: Request, db: DbDep, me: Me) -> MuteView:
    """A second supervisor (not the one who asked: ``403 second_supervisor_required``) confirms
    a requested mute; it starts now. Decided once (``409 invalid_transition`` after)."""
    bus = get_state(request).bus
    return MuteView.of(await mutes.decide_mute(db, bus, me, mute_id, confirm=True))


@router.post(
    "/mutes/{mute_id}/cancel",
    response_model=MuteView,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def cancel_mute(mute_id: uuid.UUID, request: Request, db: DbDep, me: Me) -> MuteView:
    bus = get_state(request).bus
    return MuteView.of(await mutes.decide_mute(db, bus, me, mute_id, confirm=False))


@router.post(
    "/sessions/{session_id}/consent-request",
    response_model=ConsentAsked,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def ask_consent(session_id: uuid.UUID, request: Request, me: Me) -> ConsentAsked:
    """Ask the visitor, in the chat, whether a hotline partner may receive their transcript and
    a contact number (the volunteer holding the chat, or a supervisor who holds or joined it).
    The answer arrives on the volunteer socket; the handoff payload carries only what was
    agreed to (docs/handoff.md). Audited."""
    state = get_state(request)
    # Not the request's transaction, as for join: the question's commit locks the session row.
    seq = await consent_ask.run_ask(state.sessionmaker, state.committer, me, session_id)
    return ConsentAsked(session_id=session_id, seq=seq)
