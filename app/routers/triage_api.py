"""`POST /v1/triage`: the partner API (SPEC §6). Authenticate, limit, read, validate, delegate.

The body is read here rather than declared as a FastAPI body parameter, so that the order is
authentication → rate limit → size limit → parsing: an unauthenticated or over-quota caller never
gets a multi-megabyte body read or parsed, and every authenticated call, refused or not, lands in
the request log with its status.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import Message
from time import perf_counter
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect

from app.core.errors import (
    BadRequest,
    BeaconError,
    ErrorBody,
    PayloadTooLarge,
    RateLimited,
    UnsupportedMediaType,
    error_responses,
)
from app.partners import service
from app.partners.ratelimit import TokenBucketLimiter
from app.partners.schemas import RequestLimits, TriageResponse, request_body_openapi
from app.resources import schemas as resource_schemas
from app.resources import suited
from app.routers.deps import DbDep, StateDep

log = structlog.get_logger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One limiter per app instance (and so per process): see app/partners/ratelimit.py.
    app.state.partner_limiter = TokenBucketLimiter()
    yield


router = APIRouter(tags=["partner"], lifespan=_lifespan)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PartnerKey",
    description="A partner key from `beacon partner add` (format `bk_<prefix>_<secret>`).",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
# scope="function": the transaction commits before the response is sent, so a client that
# got its answer can rely on the request log (and its Idempotency-Key) being durable.

_IDEMPOTENCY_KEY_PARAM: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes retries safe: a repeat with the same key and the same body returns the stored "
        "first response (byte-identical, with `Idempotent-Replayed: true`); the same key with a "
        "different body is refused with 409 `idempotency_key_reused`. Scoped to the API key."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": service.MAX_IDEMPOTENCY_KEY_LENGTH,
        "pattern": "^[!-~]+$",
    },
}


_RESOURCES_PARAMS: list[dict[str, Any]] = [
    {
        "name": "resources",
        "in": "query",
        "required": False,
        "description": (
            "`1`: each result also carries `resources`, the reviewed resources of Beacon's "
            "library that suit its level and locale (at most 5), looked up when answering "
            "(also on an Idempotency-Key replay, whose triage part is the stored one)."
        ),
        "schema": {"type": "string", "enum": ["0", "1"]},
    },
    {
        "name": "locale",
        "in": "query",
        "required": False,
        "description": (
            "The resources' locale (e.g. `es`); without it, the language triage read "
            "(`lang:` signal), else `en`."
        ),
        "schema": {
            "type": "string",
            "minLength": 2,
            "maxLength": 16,
            "pattern": resource_schemas.LOCALE_PATTERN,
        },
    },
]


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


# The stable `error` codes each status can carry (see app/partners/errors.py for when).
_ERROR_CODES = {
    400: "invalid_json",
    401: "missing_api_key, invalid_api_key or key_revoked",
    403: "insufficient_scope",
    409: "idempotency_key_reused",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error, invalid_idempotency_key or invalid_query",
    429: "rate_limited",
}


def _responses() -> dict[int | str, dict[str, Any]]:
    responses = error_responses(*_ERROR_CODES)
    for status, codes in _ERROR_CODES.items():
        responses[status]["description"] = f"`error`: {codes}"
    responses[200] = {
        "description": "One TriageResult, or for a batch the results in request order.",
        "headers": {
            "X-Request-Id": _header("Id of the logged call (the original one on a replay)."),
            "Idempotent-Replayed": _header("`true` when this is a stored response replayed."),
        },
    }
    responses[401]["headers"] = {"WWW-Authenticate": _header("Bearer challenge (RFC 6750).")}
    responses[429]["headers"] = {
        "Retry-After": _header("Seconds until the key may call again.", {"type": "integer"})
    }
    return responses


class CanonicalJSONResponse(Response):
    """Sorted keys, no spaces: a stored body replays to the very same bytes it was first sent as
    (Postgres JSONB does not keep key order, so the natural rendering would not)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")


def _error_response(exc: BeaconError, headers: dict[str, str] | None = None) -> Response:
    body = ErrorBody(error=exc.code, detail=exc.detail).model_dump(mode="json")
    return CanonicalJSONResponse(
        body, status_code=exc.status_code, headers={**(exc.headers or {}), **(headers or {})}
    )


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise UnsupportedMediaType("send the body as application/json")
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        raise UnsupportedMediaType("send the body as application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body may be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body may be at most {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("the client went away before sending the whole body") from None
    return b"".join(chunks)


def _limiter(request: Request) -> TokenBucketLimiter:
    limiter = request.app.state.partner_limiter
    assert isinstance(limiter, TokenBucketLimiter)
    return limiter


@router.post(
    "/v1/triage",
    response_model=TriageResponse,
    responses=_responses(),
    summary="Triage a text (with its conversation) or a batch of up to 100",
    openapi_extra={
        "requestBody": request_body_openapi(),
        "parameters": [_IDEMPOTENCY_KEY_PARAM, *_RESOURCES_PARAMS],
    },
)
async def triage(request: Request, state: StateDep, db: DbDep, credentials: BearerDep) -> Response:
    started = perf_counter()
    settings = state.settings
    principal: service.PartnerPrincipal | None = None
    status_code = 500
    outcome: service.TriageOutcome | None = None
    request_id: int | None = None
    try:
        principal = await service.authenticate(
            db, credentials.credentials if credentials else None, scope=service.TRIAGE_SCOPE
        )
        per_minute = principal.rate_limit_per_min or settings.partner_rate_limit_per_min
        wait_s = _limiter(request).acquire(principal.key_id, per_minute)
        if wait_s is not None:
            raise RateLimited(
                f"over {per_minute} requests per minute",
                headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            )
        raw: bytes | None = None
        try:
            _require_json(request)
            raw = await _read_body(request, settings.triage_max_body_bytes)
            idempotency_key = service.parse_idempotency_key(request.headers.get("idempotency-key"))
            wants = suited.parse_query(request.query_params)
            payload = service.parse_triage_body(raw, RequestLimits.from_settings(settings))
            outcome = await service.triage(
                db,
                principal,
                payload,
                idempotency_key=idempotency_key,
                metrics=state.metrics,
                started=started,
                engine=state.triage,
            )
        except BeaconError as exc:
            # Returned rather than raised, so the transaction commits the refusal's log row.
            request_id = await service.record_refusal(
                db, principal, exc, raw_body=raw, started=started
            )
            status_code = exc.status_code
            return _error_response(exc, {"X-Request-Id": str(request_id)})
        request_id = outcome.request_id
        status_code = outcome.status_code
        headers = {"X-Request-Id": str(request_id)}
        if outcome.replayed:
            headers["Idempotent-Replayed"] = "true"
        body = outcome.body
        if wants is not None and status_code == 200:
            body = await suited.with_resources(db, body, wants)
        return CanonicalJSONResponse(body, status_code=status_code, headers=headers)
    except BeaconError as exc:
        status_code = exc.status_code
        raise
    finally:
        state.metrics.partner_requests.labels(status=str(status_code)).inc()
        log.info(
            "partner_triage",
            api_key_id=_key_id(principal),
            request_id=request_id,
            status=status_code,
            items=outcome.item_count if outcome else None,
            replayed=outcome.replayed if outcome else False,
            duration_ms=round((perf_counter() - started) * 1000.0, 3),
        )


def _key_id(principal: service.PartnerPrincipal | None) -> str | None:
    return str(principal.key_id) if principal is not None else None
