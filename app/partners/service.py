"""Partner keys, the triage call with its idempotency, and the request log.

Services add to the caller's transaction and never commit: the HTTP request (or the CLI command)
is the unit of work. Nothing here stores or logs message text.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record_event
from app.core.db import utcnow
from app.core.errors import BeaconError, InvalidJson, NotFound, ValidationFailed
from app.core.metrics import Metrics
from app.core.security import digest_secret, keyed_digest, secret_matches
from app.partners import repository
from app.partners.errors import (
    IdempotencyKeyReused,
    InsufficientScope,
    InvalidApiKey,
    InvalidIdempotencyKey,
    KeyRevoked,
    MissingApiKey,
)
from app.partners.keys import issue_key, split_key
from app.partners.models import ApiKey, TriageRequest
from app.partners.schemas import (
    RequestLimits,
    TriageBatch,
    TriageBatchOut,
    TriageItem,
    TriageResultOut,
    triage_request_adapter,
)
from app.triage import Engine, TriageResult

TRIAGE_SCOPE = "triage"
KNOWN_SCOPES = frozenset({TRIAGE_SCOPE})
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# A single text is triaged on the event loop (microseconds); a batch goes to a worker thread so
# that chat sockets keep being served while it runs.


@dataclass(frozen=True, slots=True)
class PartnerPrincipal:
    key_id: uuid.UUID
    prefix: str
    scopes: frozenset[str]
    rate_limit_per_min: int | None
    # The presented secret keys the request fingerprint (see request_fingerprint); never stored.
    fingerprint_key: bytes


@dataclass(frozen=True, slots=True)
class TriageOutcome:
    status_code: int
    body: dict[str, Any]
    request_id: int
    replayed: bool
    item_count: int


# Keys ----------------------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= 200:
        raise ValidationFailed("name must be 1-200 characters")
    return cleaned


def _clean_scopes(scopes: Sequence[str]) -> list[str]:
    unknown = set(scopes) - KNOWN_SCOPES
    if unknown:
        raise ValidationFailed(f"unknown scopes: {', '.join(sorted(unknown))}")
    return sorted(set(scopes))


async def create_key(
    db: AsyncSession,
    *,
    name: str,
    scopes: Sequence[str] = (TRIAGE_SCOPE,),
    rate_limit_per_min: int | None = None,
    actor_id: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key row and the key in clear, which exists only in this return value."""
    if rate_limit_per_min is not None and rate_limit_per_min < 1:
        raise ValidationFailed("rate_limit_per_min must be at least 1")
    issued = issue_key()
    row = ApiKey(
        name=_clean_name(name),
        prefix=issued.prefix,
        key_hash=digest_secret(issued.secret),
        scopes=_clean_scopes(scopes),
        rate_limit_per_min=rate_limit_per_min,
    )
    db.add(row)
    await db.flush()
    record_event(
        db,
        actor_type="system",
        actor_id=actor_id,
        action="api_key_created",
        subject_type="api_key",
        subject_id=str(row.id),
        details={
            "prefix": row.prefix,
            "scopes": row.scopes,
            "rate_limit_per_min": rate_limit_per_min,
        },
    )
    return row, issued.token


async def revoke_key(db: AsyncSession, key_id: uuid.UUID, *, actor_id: str | None = None) -> ApiKey:
    """Revokes at once (keys are checked on every request); revoking twice keeps the first time."""
    row = await repository.key_for_update(db, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record_event(
            db,
            actor_type="system",
            actor_id=actor_id,
            action="api_key_revoked",
            subject_type="api_key",
            subject_id=str(row.id),
            details={"prefix": row.prefix},
        )
        await db.flush()
    return row


async def list_keys(db: AsyncSession) -> list[ApiKey]:
    return await repository.all_keys(db)


async def authenticate(db: AsyncSession, token: str | None, *, scope: str) -> PartnerPrincipal:
    """The key behind a bearer token, checked for revocation and scope.

    A malformed, unknown or wrong key are one error (``invalid_api_key``), so probing cannot learn
    which prefixes exist. ``key_revoked`` is told only to someone who presented the right secret.
    """
    if token is None:
        raise MissingApiKey()
    parts = split_key(token)
    if parts is None:
        raise InvalidApiKey()
    prefix, secret = parts
    row = await repository.key_by_prefix(db, prefix)
    if not secret_matches(secret, row.key_hash if row is not None else None) or row is None:
        raise InvalidApiKey()
    if row.revoked_at is not None:
        raise KeyRevoked()
    if scope not in row.scopes:
        raise InsufficientScope(scope)
    return PartnerPrincipal(
        key_id=row.id,
        prefix=row.prefix,
        scopes=frozenset(row.scopes),
        rate_limit_per_min=row.rate_limit_per_min,
        fingerprint_key=secret.encode("ascii"),
    )


# Requests ------------------------------------------------------------------------------------


def parse_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_LENGTH or not all(
        "!" <= ch <= "~" for ch in value
    ):
        raise InvalidIdempotencyKey()
    return value


def _safe_errors(exc: ValidationError) -> list[dict[str, Any]]:
    # Locations, messages and types only: never the rejected input, which may be message text.
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def parse_triage_body(raw: bytes, limits: RequestLimits) -> TriageItem | TriageBatch:
    """Parses and validates in one strict pass over the raw bytes (UTF-8 checked by the parser)."""
    try:
        return triage_request_adapter.validate_json(raw, strict=True, context=limits)
    except ValidationError as exc:
        errors = _safe_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            raise InvalidJson([e["msg"] for e in errors]) from None
        raise ValidationFailed(errors) from None


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_fingerprint(principal: PartnerPrincipal, payload: TriageItem | TriageBatch) -> str:
    """Identifies a request body for idempotency without making its text recoverable.

    Canonical JSON, so a retry that re-serialises the same request (other key order, spacing)
    is still the same request. Keyed with the caller's own secret, which the server does not
    store: a plain SHA-256 of a short text could be reversed by guessing common phrases.
    """
    return keyed_digest(principal.fingerprint_key, _canonical_json(payload.model_dump(mode="json")))


def _assess_all(engine: Engine, items: Sequence[TriageItem]) -> list[tuple[TriageResult, float]]:
    """One engine call for the whole request (one encoder batch); each item reports its share."""
    started = perf_counter()
    results = engine.assess_many([(item.text, item.context) for item in items])
    share_ms = (perf_counter() - started) * 1000.0 / max(len(items), 1)
    return [(result, share_ms) for result in results]


async def _run_triage(
    engine: Engine, payload: TriageItem | TriageBatch, metrics: Metrics
) -> tuple[dict[str, Any], list[int], str]:
    items = [payload] if isinstance(payload, TriageItem) else payload.items
    # The encoder is CPU work: even one text goes to a worker thread, never the event loop.
    assessed = await asyncio.to_thread(_assess_all, engine, items)
    outs = [TriageResultOut.from_result(result, ms) for result, ms in assessed]
    for out in outs:
        metrics.triage_latency_ms.labels(source="partner").observe(out.elapsed_ms)
        metrics.triage_levels.labels(source="partner", level=out.level).inc()
    levels = [out.level_value for out in outs]
    model_version = outs[0].model_version
    if isinstance(payload, TriageItem):
        return outs[0].model_dump(mode="json"), levels, model_version
    batch = TriageBatchOut(
        items=outs,
        model_version=model_version,
        elapsed_ms=round(sum(ms for _, ms in assessed), 3),
    )
    return batch.model_dump(mode="json"), levels, model_version


def _replay(stored: TriageRequest, fingerprint: str) -> TriageOutcome:
    if stored.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    return TriageOutcome(
        status_code=stored.status_code,
        body=stored.response_body,
        request_id=stored.id,
        replayed=True,
        item_count=stored.item_count,
    )


def _elapsed_ms(started: float) -> float:
    return round((perf_counter() - started) * 1000.0, 3)


async def triage(
    db: AsyncSession,
    principal: PartnerPrincipal,
    payload: TriageItem | TriageBatch,
    *,
    idempotency_key: str | None,
    metrics: Metrics,
    started: float,
    engine: Engine,
) -> TriageOutcome:
    """Triage and log one call; with an Idempotency-Key, a repeat returns the first response.

    Only completed (200) calls are stored under their Idempotency-Key: a call refused for its
    body, rate or credentials has no effect, so retrying it with the same key is allowed.
    Concurrent first calls with one key race on the (api_key_id, idempotency_key) unique
    constraint: the loser's insert waits for the winner's commit, fails, and it answers with the
    winner's stored response, so both callers see one identical body and one row exists.
    """
    fingerprint = request_fingerprint(principal, payload)
    if idempotency_key is not None:
        stored = await repository.request_by_idempotency_key(db, principal.key_id, idempotency_key)
        if stored is not None:
            return _replay(stored, fingerprint)

    body, levels, model_version = await _run_triage(engine, payload, metrics)
    row = TriageRequest(
        api_key_id=principal.key_id,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        status_code=200,
        response_body=body,
        item_count=len(levels),
        levels=levels,
        model_version=model_version,
        duration_ms=_elapsed_ms(started),
    )
    if idempotency_key is None:
        db.add(row)
        await db.flush()
    else:
        try:
            async with db.begin_nested():
                db.add(row)
                await db.flush()
        except IntegrityError:
            stored = await repository.request_by_idempotency_key(
                db, principal.key_id, idempotency_key
            )
            if stored is None:
                raise
            return _replay(stored, fingerprint)
    return TriageOutcome(
        status_code=200, body=body, request_id=row.id, replayed=False, item_count=len(levels)
    )


async def record_refusal(
    db: AsyncSession,
    principal: PartnerPrincipal,
    error: BeaconError,
    *,
    raw_body: bytes | None,
    started: float,
) -> int:
    """Logs an authenticated call refused for its request (size, type, shape, key reuse).

    Only the error code is stored: validation details can name the caller's JSON keys, which
    are caller-controlled text. Refusals never hold an Idempotency-Key (see ``triage``).
    """
    row = TriageRequest(
        api_key_id=principal.key_id,
        idempotency_key=None,
        request_hash=keyed_digest(principal.fingerprint_key, raw_body) if raw_body else "",
        status_code=error.status_code,
        response_body={"error": error.code},
        item_count=0,
        levels=[],
        model_version="",
        duration_ms=_elapsed_ms(started),
    )
    db.add(row)
    await db.flush()
    return row.id
