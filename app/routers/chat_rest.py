"""The visitor's REST calls beside the socket (issue 14), authenticated by the resume token:
the post-chat survey, and erasure over HTTP (SPEC §3: "type DELETE, or call an endpoint").

Thin: read the token, call the services, answer. The token goes in ``Authorization: Bearer``,
never in the path or query, so it is not written to access logs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.chat import service as chat
from app.chat.errors import InvalidResumeToken
from app.core.errors import error_responses
from app.feedback import service as feedback
from app.feedback.schemas import SurveyIn, SurveyStored
from app.routers.deps import DbDep, get_state

router = APIRouter(prefix="/v1/chat/sessions", tags=["chat"])

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ResumeToken",
    description="the resume token the visitor socket's `session` frame gave",
)


def _token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidResumeToken(
            "send the resume token as a bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    return credentials.credentials


TokenDep = Annotated[str, Depends(_token)]


@router.post(
    "/{session_id}/survey",
    status_code=201,
    response_model=SurveyStored,
    responses=error_responses(400, 401, 409, 422),
)
async def answer_survey(
    session_id: uuid.UUID, body: SurveyIn, request: Request, db: DbDep, token: TokenDep
) -> SurveyStored:
    """After the chat has ended (`409 chat_not_ended` before): "did this help?" and "do you
    feel safer now?", 1-5 each, either may be skipped; once per chat
    (`409 survey_already_answered`). Numbers only, never text."""
    metrics = get_state(request).metrics
    row = await feedback.answer(db, metrics, session_id=session_id, token=token, body=body)
    return SurveyStored(session_id=str(row.session_id), helped=row.helped, safer=row.safer)


@router.delete("/{session_id}", status_code=204, responses=error_responses(401, 422))
async def erase(session_id: uuid.UUID, request: Request, db: DbDep, token: TokenDep) -> Response:
    """Erase this chat: every message text is removed, the chat ends and the resume token stops
    working (a second call is `401 invalid_resume_token`). The audit log keeps only that an
    erasure happened and how many messages it covered. An open visitor socket is told
    `closed` and closed."""
    await chat.session_for_token(db, session_id, token)
    await chat.erase_transcript(db, get_state(request).bus, session_id=session_id)
    return Response(status_code=204)


__all__ = ["router"]
