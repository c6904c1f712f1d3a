"""The resource library: admins add and remove, volunteers search and send, partners get the
resources that suit a triage result.

The library is small (a helpline's reviewed list: tens to hundreds of rows), so a search reads
one locale's rows and filters topics, levels and words in Python: the same code on Postgres and
SQLite, with no JSON operators that differ between them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import Actor, record
from app.chat import cards
from app.chat.commit_plan import AuditOnStore
from app.chat.committer import MessageCommitter, NewMessage
from app.core.db import transaction, utcnow
from app.resources import schemas
from app.resources.errors import ResourceNotFound
from app.resources.models import Resource
from app.routing.access import require_access
from app.routing.accounts import Principal
from app.triage.types import Level

MAX_RESULTS = 50
SUITED_LIMIT = 5


def out(row: Resource) -> schemas.ResourceOut:
    return schemas.ResourceOut(
        id=row.id,
        title=row.title,
        locale=row.locale,
        topics=list(row.topics),
        levels=[schemas.LEVEL_NAMES[v] for v in sorted(row.levels)],
        url=row.url,
        phone=row.phone,
        text=row.text,
        created_at=row.created_at,
    )


def card_of(row: Resource) -> cards.ResourceCard:
    return cards.ResourceCard(
        resource_id=str(row.id), title=row.title, text=row.text, url=row.url, phone=row.phone
    )


async def add(db: AsyncSession, data: schemas.ResourceIn, *, actor: Actor) -> Resource:
    row = Resource(
        id=uuid.uuid4(),
        title=data.title,
        locale=data.locale,
        topics=data.topics,
        levels=data.level_values(),
        url=data.url,
        phone=data.phone,
        text=data.text,
        created_at=utcnow(),
    )
    db.add(row)
    await db.flush()
    record(
        db,
        actor,
        "resource_added",
        subject_type="resource",
        subject_id=str(row.id),
        details={"locale": row.locale, "levels": row.levels, "topics": row.topics},
    )
    return row


async def remove(db: AsyncSession, resource_id: uuid.UUID, *, actor: Actor) -> None:
    """Cards already sent keep their snapshot (app/chat/cards.py): only the library changes."""
    result = await db.execute(
        delete(Resource).where(Resource.id == resource_id).returning(Resource.id)
    )
    if result.scalar_one_or_none() is None:
        raise ResourceNotFound("no such resource")
    record(db, actor, "resource_removed", subject_type="resource", subject_id=str(resource_id))


async def get(db: AsyncSession, resource_id: uuid.UUID) -> Resource:
    row = await db.get(Resource, resource_id)
    if row is None:
        raise ResourceNotFound("no such resource")
    return row


def _matches(row: Resource, words: Sequence[str]) -> bool:
    haystack = " ".join([row.title, row.text, *row.topics]).casefold()
    return all(word in haystack for word in words)


async def search(
    db: AsyncSession,
    *,
    locale: str | None = None,
    topic: str | None = None,
    level: int | None = None,
    q: str | None = None,
    limit: int = MAX_RESULTS,
) -> list[Resource]:
    query = select(Resource).order_by(Resource.locale, Resource.title, Resource.id)
    if locale is not None:
        query = query.where(Resource.locale == locale)
    words = (q or "").casefold().split()
    found = []
    for row in (await db.scalars(query)).all():
        if topic is not None and topic not in row.topics:
            continue
        if level is not None and level not in row.levels:
            continue
        if words and not _matches(row, words):
            continue
        found.append(row)
        if len(found) >= limit:
            break
    return found


async def suited(db: AsyncSession, *, level: Level, locale: str) -> list[Resource]:
    """What a partner app may show at once for a triage result (``POST /v1/triage?resources=1``)."""
    return await search(db, locale=locale, level=int(level), limit=SUITED_LIMIT)


async def send(
    sessionmaker: async_sessionmaker[AsyncSession],
    committer: MessageCommitter,
    principal: Principal,
    session_id: uuid.UUID,
    body: schemas.SendResource,
) -> schemas.SentResource:
    """Store the card as the volunteer's message through the chat's group commit (the same
    seq, resend dedup and delivery as typed messages); its ``resource_sent`` audit entry commits
    with it, so neither can exist without the other, and a resend records nothing more."""
    async with transaction(sessionmaker) as db:
        await require_access(db, principal, session_id, write=True)
        card = card_of(await get(db, body.resource_id))
    stored = await committer.submit(
        NewMessage(
            session_id=session_id,
            sender="volunteer",
            text=cards.encode(card),
            client_msg_id=body.client_msg_id,
            sender_id=principal.actor_id,
            kind=cards.KIND,
            audit=AuditOnStore(
                "resource_sent", principal.role, {"resource_id": str(body.resource_id)}
            ),
        )
    )
    return schemas.SentResource(
        session_id=session_id,
        resource_id=body.resource_id,
        client_msg_id=body.client_msg_id,
        seq=stored.seq,
    )
