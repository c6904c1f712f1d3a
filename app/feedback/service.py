"""Storing and summarising post-chat survey answers.

Answers are taken only once a chat has ended (the page asks after close), once per session,
with the visitor's resume token; they hold numbers only. The audit log records that a survey
was answered, not the answers (they are in their own table, for the summaries).
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import VISITOR, record
from app.chat.service import session_for_token
from app.core.db import utcnow
from app.core.metrics import Metrics
from app.domain.session import TERMINAL
from app.feedback.errors import ChatNotEnded, SurveyAlreadyAnswered
from app.feedback.models import SurveyAnswer
from app.feedback.schemas import QUESTIONS, SurveyIn, SurveySummary


async def answer(
    db: AsyncSession, metrics: Metrics, *, session_id: uuid.UUID, token: str, body: SurveyIn
) -> SurveyAnswer:
    session = await session_for_token(db, session_id, token)
    if session.status not in TERMINAL:
        raise ChatNotEnded("the survey opens when the chat has ended")
    row = SurveyAnswer(
        session_id=session_id, helped=body.helped, safer=body.safer, answered_at=utcnow()
    )
    if await db.get(SurveyAnswer, session_id) is not None:
        raise SurveyAlreadyAnswered("this chat's survey has already been answered")
    db.add(row)
    try:
        await db.flush()
    except IntegrityError:
        # Two answers racing: the loser's transaction is spoilt, and the request rolls it back.
        raise SurveyAlreadyAnswered("this chat's survey has already been answered") from None
    record(
        db,
        VISITOR,
        "survey_answered",
        subject_type="session",
        subject_id=str(session_id),
        details={"questions": [q for q in QUESTIONS if getattr(body, q) is not None]},
    )
    for question in QUESTIONS:
        value = getattr(body, question)
        if value is not None:
            metrics.survey_answers.labels(question=question, answer=str(value)).inc()
    return row


async def summary(db: AsyncSession) -> SurveySummary:
    """Every answer so far: how many, the mean and the count per point of each scale."""
    answered = int(await db.scalar(select(func.count()).select_from(SurveyAnswer)) or 0)
    means: dict[str, float | None] = {}
    counts: dict[str, dict[str, int]] = {}
    for question in QUESTIONS:
        column = getattr(SurveyAnswer, question)
        mean = await db.scalar(select(func.avg(column)))
        means[question] = None if mean is None else round(float(mean), 2)
        rows = (
            await db.execute(
                select(column, func.count()).where(column.is_not(None)).group_by(column)
            )
        ).all()
        found = {int(value): int(n) for value, n in rows}
        counts[question] = {str(point): found.get(point, 0) for point in range(1, 6)}
    return SurveySummary(answered=answered, mean=means, counts=counts)
