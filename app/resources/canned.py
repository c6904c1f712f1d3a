"""Canned replies: reviewed per-locale snippets a volunteer sends with one click.

Placeholders are filled on the server, when a volunteer lists the replies: the server knows the
volunteer's name and the hotline numbers of the locale (the same partners file as the safety
panel), and a client then sends the filled text as an ordinary ``message``, so the transcript
holds exactly what the visitor read. Only the names in ``PLACEHOLDERS`` are allowed; an admin
saving anything else (``{visitor_name}``: visitors are anonymous) is refused with
``unknown_placeholder``, so a snippet can never show a raw ``{...}`` to someone in crisis.
"""

from __future__ import annotations

import re
import string
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor, record
from app.core.db import utcnow
from app.resources.errors import CannedReplyNotFound, UnknownPlaceholder
from app.resources.models import CannedReply
from app.resources.schemas import Locale, storable

PLACEHOLDERS: Mapping[str, str] = {
    "volunteer_name": "the volunteer's name as their account shows it",
    "hotline": "the phone number of the first hotline partner for the locale, else the "
    "emergency number",
    "hotline_name": "that hotline's name (else 'the emergency services')",
    "emergency": "the emergency number for the locale",
}
_NAME = re.compile(r"^[a-z_]+$")


def placeholders_in(text: str) -> list[str]:
    """The placeholder names of ``text``; raises UnknownPlaceholder for anything else in braces
    (also an unbalanced brace or a format spec: this is a fill-in, not a format language)."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        raise UnknownPlaceholder("unbalanced { or }; write {{ and }} for a literal brace") from None
    names: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not _NAME.match(name) or name not in PLACEHOLDERS:
            raise UnknownPlaceholder(
                f"unknown placeholder {{{name}}}; allowed: "
                + ", ".join(f"{{{known}}}" for known in PLACEHOLDERS)
            )
        names.append(name)
    return names


def fill(text: str, values: Mapping[str, str]) -> str:
    placeholders_in(text)
    return text.format_map({name: values.get(name, "") for name in PLACEHOLDERS})


class CannedIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "locale": "en",
                    "title": "Introduce yourself",
                    "text": "Hi, I'm {volunteer_name}. I'm here to listen. What's going on?",
                }
            ]
        },
    )

    locale: Locale
    title: Annotated[
        str, Field(min_length=1, max_length=80, pattern=r"\S"), AfterValidator(storable)
    ]
    text: Annotated[
        str, Field(min_length=1, max_length=1000, pattern=r"\S"), AfterValidator(storable)
    ]


class CannedOut(BaseModel):
    id: uuid.UUID
    locale: str
    title: str
    text: str = Field(description="as the admin wrote it, placeholders included")
    placeholders: list[str]
    created_at: datetime


class CannedForVolunteer(CannedOut):
    filled: str = Field(description="the text with its placeholders filled for you (send this)")


class CannedList(BaseModel):
    replies: list[CannedOut]


class CannedForVolunteerList(BaseModel):
    placeholders: dict[str, str] = Field(description="every placeholder and what fills it")
    replies: list[CannedForVolunteer]


def out(row: CannedReply) -> CannedOut:
    return CannedOut(
        id=row.id,
        locale=row.locale,
        title=row.title,
        text=row.text,
        placeholders=placeholders_in(row.text),
        created_at=row.created_at,
    )


def for_volunteer(row: CannedReply, values: Mapping[str, str]) -> CannedForVolunteer:
    return CannedForVolunteer(**out(row).model_dump(), filled=fill(row.text, values))


async def add(db: AsyncSession, data: CannedIn, *, actor: Actor) -> CannedReply:
    placeholders_in(data.text)
    row = CannedReply(
        id=uuid.uuid4(), locale=data.locale, title=data.title, text=data.text, created_at=utcnow()
    )
    db.add(row)
    await db.flush()
    record(
        db,
        actor,
        "canned_reply_added",
        subject_type="canned_reply",
        subject_id=str(row.id),
        details={"locale": row.locale},
    )
    return row


async def remove(db: AsyncSession, reply_id: uuid.UUID, *, actor: Actor) -> None:
    result = await db.execute(
        delete(CannedReply).where(CannedReply.id == reply_id).returning(CannedReply.id)
    )
    if result.scalar_one_or_none() is None:
        raise CannedReplyNotFound("no such canned reply")
    record(db, actor, "canned_reply_removed", subject_type="canned_reply", subject_id=str(reply_id))


async def listing(db: AsyncSession, *, locale: str | None = None) -> list[CannedReply]:
    query = select(CannedReply).order_by(CannedReply.locale, CannedReply.title, CannedReply.id)
    if locale is not None:
        query = query.where(CannedReply.locale == locale)
    return list((await db.scalars(query)).all())
