"""Rows with chosen timestamps, written straight to the database, for retention tests."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatSession, Message
from app.partners.models import ApiKey, TriageRequest
from app.routing.models import Disposition
from tests.factories import chat_session, save

DAY = timedelta(days=1)


def ago(now: datetime, days: float) -> datetime:
    return now - timedelta(days=days)


async def add_session(
    db: AsyncSession, *, created: datetime, status: str = "closed", urgency: int = 0
) -> uuid.UUID:
    row = chat_session(
        now=created,
        status=status,
        urgency=urgency,
        signals=["method:overdose"] if urgency >= 3 else [],
        visitor_connected=False,
        visitor_spoke_at=None,
        token_expires_at=created + DAY,
    )
    return (await save(db, row)).id


async def add_message(
    db: AsyncSession,
    session_id: uuid.UUID,
    seq: int,
    *,
    sent_at: datetime,
    text: str | None = "words someone wrote",
    sender: str = "visitor",
    level: int = 3,
) -> int:
    message = Message(
        session_id=session_id,
        seq=seq,
        sender=sender,
        client_msg_id=uuid.uuid4().hex,
        text=text,
        sent_at=sent_at,
        level=level if sender == "visitor" else None,
        score=0.8 if sender == "visitor" else None,
        signals=["method:overdose"] if sender == "visitor" else None,
        model_version="test-1" if sender == "visitor" else None,
        triage_ms=0.1 if sender == "visitor" else None,
    )
    db.add(message)
    await db.flush()
    return message.id


async def add_disposition(
    db: AsyncSession, session_id: uuid.UUID, *, created: datetime, notes: str | None
) -> int:
    row = Disposition(
        session_id=session_id, code="resolved", notes=notes, risk_level=2, created_at=created
    )
    db.add(row)
    await db.flush()
    return row.id


async def add_api_key(db: AsyncSession) -> uuid.UUID:
    key = ApiKey(
        name="retention test",
        prefix=secrets.token_hex(8),
        key_hash=secrets.token_hex(32),
        scopes=["triage"],
    )
    db.add(key)
    await db.flush()
    return key.id


async def add_triage_request(db: AsyncSession, api_key_id: uuid.UUID, *, created: datetime) -> int:
    row = TriageRequest(
        api_key_id=api_key_id,
        idempotency_key=uuid.uuid4().hex,
        request_hash=secrets.token_hex(32),
        status_code=200,
        response_body={"level": "low"},
        item_count=1,
        levels=[1],
        model_version="test-1",
        duration_ms=0.5,
        created_at=created,
    )
    db.add(row)
    await db.flush()
    return row.id


@dataclass
class Fixture:
    """One of each kind of row on both sides of the cutoff (``retention_days`` = 90)."""

    closed_old: uuid.UUID
    open_old: uuid.UUID
    recent: uuid.UUID
    old_message_ids: list[int]
    kept_message_ids: list[int]
    erased_message_id: int
    old_note_id: int
    kept_note_id: int
    old_request_ids: list[int]
    kept_request_id: int


async def build(db: AsyncSession, now: datetime) -> Fixture:
    # A conversation that ended 120 days ago: all of it goes.
    closed_old = await add_session(db, created=ago(now, 120))
    old = [
        await add_message(db, closed_old, 1, sent_at=ago(now, 120)),
        await add_message(db, closed_old, 2, sent_at=ago(now, 120), sender="volunteer"),
        await add_message(db, closed_old, 3, sent_at=ago(now, 119), sender="system"),
    ]
    erased = await add_message(db, closed_old, 4, sent_at=ago(now, 119), text=None)
    # A high-risk session still open after 100 days (on the supervisors' list, never wrapped
    # up): its old lines go, its recent ones stay.
    open_old = await add_session(db, created=ago(now, 100), status="active", urgency=3)
    old.append(await add_message(db, open_old, 1, sent_at=ago(now, 100)))
    kept = [await add_message(db, open_old, 2, sent_at=ago(now, 1))]
    # Just inside the period: kept.
    recent = await add_session(db, created=ago(now, 89))
    kept.append(await add_message(db, recent, 1, sent_at=ago(now, 89)))
    old_note = await add_disposition(db, closed_old, created=ago(now, 119), notes="said X")
    kept_note = await add_disposition(db, recent, created=ago(now, 89), notes="said Y")
    key = await add_api_key(db)
    old_requests = [
        await add_triage_request(db, key, created=ago(now, 91)),
        await add_triage_request(db, key, created=ago(now, 200)),
    ]
    kept_request = await add_triage_request(db, key, created=ago(now, 89))
    return Fixture(
        closed_old=closed_old,
        open_old=open_old,
        recent=recent,
        old_message_ids=old,
        kept_message_ids=kept,
        erased_message_id=erased,
        old_note_id=old_note,
        kept_note_id=kept_note,
        old_request_ids=old_requests,
        kept_request_id=kept_request,
    )


async def texts(db: AsyncSession, ids: list[int]) -> list[str | None]:
    rows = await db.execute(select(Message.id, Message.text).where(Message.id.in_(ids)))
    by_id = {row.id: row.text for row in rows}
    return [by_id[i] for i in ids]


async def assert_purged_as_expected(db: AsyncSession, fx: Fixture) -> None:
    assert await texts(db, fx.old_message_ids) == [None] * len(fx.old_message_ids)
    assert None not in await texts(db, fx.kept_message_ids)
    # Metadata of purged messages stays: seq, sender, level, signals, model version, time.
    purged = (
        await db.scalars(select(Message).where(Message.session_id == fx.closed_old).order_by("seq"))
    ).all()
    assert [m.seq for m in purged] == [1, 2, 3, 4]
    assert [m.sender for m in purged][:3] == ["visitor", "volunteer", "system"]
    assert purged[0].level == 3
    assert purged[0].signals == ["method:overdose"]
    assert purged[0].model_version == "test-1"
    # Sessions stay, with their urgency and signals, in whatever state they were.
    sessions = {
        s.id: s
        for s in (
            await db.scalars(
                select(ChatSession).where(ChatSession.id.in_([fx.closed_old, fx.open_old]))
            )
        ).all()
    }
    assert sessions[fx.closed_old].status == "closed"
    assert sessions[fx.open_old].status == "active"
    assert sessions[fx.open_old].urgency == 3
    assert sessions[fx.open_old].signals == ["method:overdose"]
    note_rows = await db.execute(
        select(Disposition.id, Disposition.notes).where(
            Disposition.id.in_([fx.old_note_id, fx.kept_note_id])
        )
    )
    notes = {row.id: row.notes for row in note_rows}
    assert notes == {fx.old_note_id: None, fx.kept_note_id: "said Y"}
    codes = await db.scalars(select(Disposition.code).where(Disposition.id == fx.old_note_id))
    assert codes.all() == ["resolved"]
    requests = set(
        (
            await db.scalars(
                select(TriageRequest.id).where(
                    TriageRequest.id.in_([*fx.old_request_ids, fx.kept_request_id])
                )
            )
        ).all()
    )
    assert requests == {fx.kept_request_id}
