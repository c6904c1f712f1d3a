"""Volunteer, supervisor and admin accounts and their bearer tokens.

Tokens are 256-bit random strings shown once; only their SHA-256 digest is stored (see
``app.core.security`` for why a fast digest is right for server-generated secrets), and the digest
doubles as the indexed lookup key. Tokens expire and can be revoked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record_event
from app.core.db import utcnow
from app.core.errors import NotFound, Unauthorized, ValidationFailed
from app.core.security import digest_secret, new_secret
from app.routing.models import ROLES, Volunteer

TOKEN_PREFIX = "bv_"  # noqa: S105 - a public marker, not a secret


def new_token() -> str:
    return TOKEN_PREFIX + new_secret()


def hash_token(token: str) -> str:
    return digest_secret(token)


def normalise_languages(languages: list[str]) -> list[str]:
    """Primary language subtags, lower-cased: "en-US" and "EN" both mean "en"."""
    seen: list[str] = []
    for raw in languages:
        code = raw.strip().replace("_", "-").split("-")[0].lower()
        if code and code not in seen:
            seen.append(code)
    return seen


@dataclass(frozen=True, slots=True)
class IssuedAccount:
    id: uuid.UUID
    name: str
    role: str
    languages: list[str]
    capacity: int
    token: str
    token_expires_at: str


async def create_volunteer(
    db: AsyncSession,
    *,
    name: str,
    role: str = "volunteer",
    languages: list[str] | None = None,
    capacity: int = 3,
    token_ttl_s: float,
) -> IssuedAccount:
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}")
    if capacity < 0:
        raise ValidationFailed("capacity must be >= 0")
    if not name.strip():
        raise ValidationFailed("name must not be empty")
    token = new_token()
    now = utcnow()
    volunteer = Volunteer(
        id=uuid.uuid4(),
        name=name.strip(),
        role=role,
        languages=normalise_languages(languages or ["en"]),
        capacity=capacity,
        load=0,
        token_hash=hash_token(token),
        token_expires_at=now + timedelta(seconds=token_ttl_s),
        presence="offline",
        idle_since=now,
        created_at=now,
    )
    db.add(volunteer)
    await db.flush()
    record_event(
        db,
        actor_type="system",
        actor_id=None,
        action="volunteer_created",
        subject_type="volunteer",
        subject_id=str(volunteer.id),
        details={"role": role, "capacity": capacity, "languages": volunteer.languages},
    )
    return IssuedAccount(
        id=volunteer.id,
        name=volunteer.name,
        role=role,
        languages=volunteer.languages,
        capacity=capacity,
        token=token,
        token_expires_at=volunteer.token_expires_at.isoformat(),
    )


async def rotate_token(db: AsyncSession, volunteer_id: uuid.UUID, *, token_ttl_s: float) -> str:
    """A fresh token (the old one stops working at once); also lifts a revocation."""
    token = new_token()
    result = await db.execute(
        update(Volunteer)
        .where(Volunteer.id == volunteer_id)
        .values(
            token_hash=hash_token(token),
            token_expires_at=utcnow() + timedelta(seconds=token_ttl_s),
            revoked_at=None,
        )
        .returning(Volunteer.id)
    )
    if result.scalar_one_or_none() is None:
        raise NotFound("no such volunteer")
    record_event(
        db,
        actor_type="system",
        actor_id=None,
        action="volunteer_token_rotated",
        subject_type="volunteer",
        subject_id=str(volunteer_id),
    )
    return token


async def revoke_volunteer(db: AsyncSession, volunteer_id: uuid.UUID) -> None:
    result = await db.execute(
        update(Volunteer)
        .where(Volunteer.id == volunteer_id, Volunteer.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(Volunteer.id)
    )
    if result.scalar_one_or_none() is None:
        exists = await db.scalar(select(Volunteer.id).where(Volunteer.id == volunteer_id))
        if exists is None:
            raise NotFound("no such volunteer")
        return  # already revoked: revoking is idempotent
    record_event(
        db,
        actor_type="system",
        actor_id=None,
        action="volunteer_revoked",
        subject_type="volunteer",
        subject_id=str(volunteer_id),
    )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: what authorization decisions are made from."""

    id: uuid.UUID
    role: str
    name: str
    languages: tuple[str, ...]
    capacity: int

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")

    @property
    def actor_id(self) -> str:
        return str(self.id)


async def authenticate(db: AsyncSession, token: str) -> Principal:
    """The one check for a volunteer token: unknown, expired and revoked all look the same."""
    if not token or len(token) > 256:
        raise Unauthorized("invalid token")
    volunteer = await db.scalar(select(Volunteer).where(Volunteer.token_hash == hash_token(token)))
    if (
        volunteer is None
        or volunteer.revoked_at is not None
        or volunteer.token_expires_at <= utcnow()
    ):
        raise Unauthorized("invalid or expired token")
    return Principal(
        id=volunteer.id,
        role=volunteer.role,
        name=volunteer.name,
        languages=tuple(volunteer.languages),
        capacity=volunteer.capacity,
    )
