"""Consent for handoff extras (SPEC §5, issue 14): the visitor decides, in the chat, whether a
hotline partner may receive their transcript and/or a contact number.

The handoff never waits for consent and always carries the minimum (session id, urgency,
signals, locale); consent decides only what goes beyond it (app/escalation/clock.build_payload).

The question is a system message of kind ``consent`` (reviewed text per language, never
generated), so it is in the transcript, has its seq and is replayed on resume like any message;
on the visitor's wire it also carries ``asks`` (what is being asked about). The visitor answers
with a ``consent`` frame; only a session that was asked can be answered, and the last answer
counts (a visitor may change their mind until the handoff is sent: the payload is built then).
The audit records the yes/no answers, never the number.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import VISITOR, Actor, record
from app.bus import Bus, session_channel
from app.bus.events import ConsentChanged, encode
from app.chat.errors import SessionClosed, SessionNotFound
from app.chat.models import ChatSession
from app.core.db import utcnow
from app.core.errors import Conflict
from app.domain.session import TERMINAL

KIND: Final = "consent"
ASKS: Final = ("transcript", "contact")
# Loose on purpose (people write numbers many ways); long enough for any E.164 number.
PHONE: Final = re.compile(r"^\+?[0-9(][0-9 ().-]{4,30}$")
QUESTION: Final = {
    "en": (
        "If we connect you with a crisis line, may we share this conversation with them, "
        "and a phone number where they can reach you? You choose: both, one, or neither. "
        "They will get your risk level either way so they can help quickly."
    ),
    "es": (
        "Si te conectamos con una línea de crisis, ¿podemos compartir esta conversación con "
        "ellos y un número de teléfono donde puedan contactarte? Tú eliges: ambos, uno o "
        "ninguno. En cualquier caso recibirán tu nivel de riesgo para ayudarte rápido."
    ),
}


class ConsentNotRequested(Conflict):
    code = "consent_not_requested"


def question(locale: str | None) -> str:
    language = (locale or "en").replace("_", "-").split("-")[0].lower()
    return QUESTION.get(language, QUESTION["en"])


def valid_phone(value: str) -> bool:
    return bool(PHONE.fullmatch(value)) and sum(c.isdigit() for c in value) >= 5


async def mark_asked(db: AsyncSession, actor: Actor, session_id: uuid.UUID) -> ChatSession:
    """Step one of asking (the caller then posts the question through the committer)."""
    session = await db.scalar(select(ChatSession).where(ChatSession.id == session_id))
    if session is None:
        raise SessionNotFound("no such session")
    if session.status in TERMINAL:
        raise SessionClosed("this chat has ended")
    session.consent_asked_at = utcnow()
    record(db, actor, "consent_requested", subject_type="session", subject_id=str(session_id))
    return session


@dataclass(frozen=True, slots=True)
class Answer:
    transcript: bool
    contact: bool


async def record_answer(
    db: AsyncSession,
    bus: Bus,
    session_id: uuid.UUID,
    *,
    transcript: bool,
    contact: bool,
    phone: str | None,
) -> Answer:
    """The visitor's answer; ``phone`` is kept only with ``contact`` (the parser checks it)."""
    session = await db.scalar(select(ChatSession).where(ChatSession.id == session_id))
    if session is None:
        raise SessionNotFound("no such session")
    if session.status in TERMINAL:
        raise SessionClosed("this chat has ended")
    if session.consent_asked_at is None:
        raise ConsentNotRequested("nobody has asked for consent in this chat")
    session.consent_answered_at = utcnow()
    session.consent_transcript = transcript
    session.consent_contact = contact
    session.contact_phone = phone if contact else None
    record(
        db,
        VISITOR,
        "consent_recorded",
        subject_type="session",
        subject_id=str(session_id),
        details={"transcript": transcript, "contact": contact},
    )
    event = ConsentChanged(str(session_id), transcript, contact)
    await bus.publish_many([(session_channel(session_id), encode(event))], db=db)
    return Answer(transcript=transcript, contact=contact)
