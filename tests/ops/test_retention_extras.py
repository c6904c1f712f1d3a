"""What issue 14 added to retention and erasure (Postgres, rolled back per test): whisper text,
the contact number a visitor chose to share, and handoff bodies (which hold a consented
transcript and number) go past the period; erasure clears the number and the whispers at once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import Event
from app.bus.memory import InProcessBus
from app.chat.models import ChatSession, Whisper
from app.chat.service import erase_transcript
from app.core.db import utcnow
from app.escalation.models import Handoff
from app.retention import service
from tests.factories import chat_session, save
from tests.ops.builders import ago

BIG = 1_000_000
PHONE = "+1 555 010 0199"


async def _extras(
    db: AsyncSession, created: datetime, status: str = "closed"
) -> tuple[uuid.UUID, int, uuid.UUID]:
    session = await save(
        db,
        chat_session(now=created, status=status, consent_contact=True, contact_phone=PHONE),
    )
    whisper = await save(
        db,
        Whisper(
            session_id=session.id,
            author_id="s",
            author_role="supervisor",
            client_msg_id=uuid.uuid4().hex,
            text="staff note",
            sent_at=created,
        ),
    )
    handoff = await save(
        db,
        Handoff(
            id=uuid.uuid4(),
            session_id=session.id,
            level=4,
            trigger="auto",
            status="delivered",
            due_at=created,
            payload={"contact": {"phone": PHONE}, "transcript": [{"text": "hi"}]},
            created_at=created,
            updated_at=created,
        ),
    )
    return session.id, whisper.id, handoff.id


async def test_extras_go_past_the_period_and_recent_ones_stay(db: AsyncSession) -> None:
    now = utcnow()
    cutoff = service.cutoff_for(90, now)
    for step in (
        service.purge_whisper_texts,
        service.purge_contacts,
        service.purge_handoff_payloads,
    ):
        await step(db, cutoff=cutoff, limit=BIG)  # whatever other tests left behind
    old = await _extras(db, ago(now, 120))
    new = await _extras(db, ago(now, 1))
    due = await service.due(db, cutoff=cutoff)
    assert (due.whispers, due.contacts, due.handoff_payloads) == (1, 1, 1)
    assert await service.purge_whisper_texts(db, cutoff=cutoff, limit=BIG) == 1
    assert await service.purge_contacts(db, cutoff=cutoff, limit=BIG) == 1
    assert await service.purge_handoff_payloads(db, cutoff=cutoff, limit=BIG) == 1
    db.expire_all()
    for (session_id, whisper_id, handoff_id), gone in ((old, True), (new, False)):
        session = await db.get(ChatSession, session_id)
        whisper = await db.get(Whisper, whisper_id)
        handoff = await db.get(Handoff, handoff_id)
        assert session is not None
        assert whisper is not None
        assert handoff is not None
        assert (session.contact_phone is None) is gone
        assert (whisper.text is None) is gone
        assert (handoff.payload is None) is gone
        assert session.consent_contact is True  # the answer stays, as a yes/no


async def test_erasure_clears_the_number_and_the_whispers(db: AsyncSession) -> None:
    session_id, whisper_id, _ = await _extras(db, utcnow(), status="active")
    await erase_transcript(db, InProcessBus(), session_id=session_id)
    db.expire_all()
    session = await db.get(ChatSession, session_id)
    whisper = await db.get(Whisper, whisper_id)
    assert session is not None
    assert whisper is not None
    assert session.contact_phone is None
    assert whisper.text is None
    details = (
        await db.scalars(select(Event.details).where(Event.subject_id == str(session_id)))
    ).all()
    assert all(PHONE not in str(d) for d in details)
