"""Wire schemas of the resource library (separate from the ORM model)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.chat.frames import MAX_CLIENT_MSG_ID
from app.triage.types import Level

LevelName = Literal["none", "low", "moderate", "high", "imminent"]
LEVEL_NAMES: tuple[LevelName, ...] = ("none", "low", "moderate", "high", "imminent")

# What a dialler accepts in a tel: link: digits, an optional leading +, spaces and dashes.
PHONE_PATTERN = r"^\+?[0-9][0-9 \-]{1,30}$"
_URL_RE = re.compile(r"^https://[^\s<>\"']+$")
_TOPIC_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# Public: the partner API's OpenAPI document states it, so that what the schema allows is
# exactly what the server accepts.
LOCALE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$"
_LOCALE_RE = re.compile(LOCALE_PATTERN)


def storable(value: str) -> str:
    """Text a person will read, as Postgres can store it: no NUL, no lone surrogates (JSON
    allows both; the database refuses them, which must be a 422 here, never a 500)."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


def primary_locale(value: str) -> str:
    """ "en-US", "EN" and "en" all mean "en" (as volunteers' languages do)."""
    if not _LOCALE_RE.match(value):
        raise ValueError("locale must be a language tag such as en or es-MX")
    return value.replace("_", "-").split("-")[0].lower()


def _url(value: str | None) -> str | None:
    # https only: a card is tapped by a person in crisis, on whatever network they are on.
    if value is not None and not _URL_RE.match(storable(value)):
        raise ValueError("url must be an https:// address")
    return value


def _topics(values: list[str]) -> list[str]:
    cleaned: list[str] = []
    for raw in values:
        topic = raw.strip().lower()
        if not _TOPIC_RE.match(topic):
            raise ValueError("topics are short lower-case words (a-z, 0-9, - and _)")
        if topic not in cleaned:
            cleaned.append(topic)
    return cleaned


Locale = Annotated[str, Field(min_length=2, max_length=16), AfterValidator(primary_locale)]
Title = Annotated[str, Field(min_length=1, max_length=120, pattern=r"\S"), AfterValidator(storable)]
ShortText = Annotated[
    str, Field(min_length=1, max_length=500, pattern=r"\S"), AfterValidator(storable)
]


class ResourceIn(BaseModel):
    """What an admin enters. Reviewed text: stored as given (trimmed), never rewritten."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "title": "Night line",
                    "locale": "en",
                    "topics": ["sleep"],
                    "levels": ["moderate", "high", "imminent"],
                    "phone": "+44 800 123 456",
                    "url": "https://example.org/night-line",
                    "text": "Trained listeners, every night from 10 pm to 6 am.",
                }
            ]
        },
    )

    title: Title
    locale: Locale
    topics: Annotated[list[str], Field(max_length=10), AfterValidator(_topics)] = []
    levels: Annotated[list[LevelName], Field(min_length=1, max_length=5)] = list(LEVEL_NAMES)
    url: Annotated[str | None, Field(max_length=500), AfterValidator(_url)] = None
    phone: Annotated[str | None, Field(max_length=32, pattern=PHONE_PATTERN)] = None
    text: ShortText

    @model_validator(mode="after")
    def _reachable(self) -> ResourceIn:
        if self.url is None and self.phone is None:
            raise ValueError("a resource needs a url, a phone number or both")
        return self

    def level_values(self) -> list[int]:
        return sorted({int(Level[name]) for name in self.levels})


class ResourceOut(BaseModel):
    id: uuid.UUID
    title: str
    locale: str
    topics: list[str]
    levels: list[LevelName]
    url: str | None
    phone: str | None
    text: str
    created_at: datetime


class ResourceList(BaseModel):
    resources: list[ResourceOut]


class SendResource(BaseModel):
    """A volunteer sends a resource into a chat they hold; ``client_msg_id`` makes a retry safe
    (the same id is answered with the first card's seq, never stored twice)."""

    model_config = ConfigDict(extra="forbid")

    resource_id: uuid.UUID
    client_msg_id: Annotated[
        str, Field(min_length=1, max_length=MAX_CLIENT_MSG_ID, pattern=r"^[!-~]+$")
    ]


class SentResource(BaseModel):
    session_id: uuid.UUID
    resource_id: uuid.UUID
    client_msg_id: str
    seq: int
