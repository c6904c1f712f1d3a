"""The partner API's SQL: keys by id or prefix, and stored requests by Idempotency-Key."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.partners.models import ApiKey, TriageRequest


async def key_for_update(db: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await db.get(ApiKey, key_id, with_for_update=True)


async def key_by_prefix(db: AsyncSession, prefix: str) -> ApiKey | None:
    return (await db.execute(select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one_or_none()


async def all_keys(db: AsyncSession) -> list[ApiKey]:
    result = await db.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
    return list(result.scalars())


async def request_by_idempotency_key(
    db: AsyncSession, key_id: uuid.UUID, idempotency_key: str
) -> TriageRequest | None:
    result = await db.execute(
        select(TriageRequest).where(
            TriageRequest.api_key_id == key_id, TriageRequest.idempotency_key == idempotency_key
        )
    )
    return result.scalar_one_or_none()
