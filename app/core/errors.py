"""The one error type the service raises on purpose, and the one handler that renders it.

Every 4xx/5xx body has the same shape, ``{"error": "<stable_code>", "detail": ...}``, so that
clients can branch on ``error`` and never parse prose.
"""

from __future__ import annotations

from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)


class ErrorBody(BaseModel):
    """Shape of every error response (declared in OpenAPI)."""

    error: str
    detail: Any = None


class BeaconError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else self.code)
        self.detail = detail
        self.headers = headers


class BadRequest(BeaconError):
    status_code = 400
    code = "bad_request"


class InvalidJson(BadRequest):
    code = "invalid_json"


class ValidationFailed(BeaconError):
    status_code = 422
    code = "validation_error"


class Unauthorized(BeaconError):
    status_code = 401
    code = "unauthorized"


class Forbidden(BeaconError):
    status_code = 403
    code = "forbidden"


class NotFound(BeaconError):
    status_code = 404
    code = "not_found"


class Conflict(BeaconError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(BeaconError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(BeaconError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(BeaconError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(BeaconError):
    status_code = 503
    code = "service_unavailable"


_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


# What any operation can answer before the app sees the request (app/core/server.py): bytes
# that are not HTTP/1.1 (400 invalid_http_request) and a request head that came too slowly
# (408 request_timeout).
BELOW_THE_APP: tuple[int, ...] = (400, 408)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries declaring the error shape for the given statuses."""
    return {s: {"model": ErrorBody, "description": _STATUS_CODES.get(s, "error")} for s in statuses}


def _json_safe_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Echoing back the rejected input could leak message text into client logs; keep locations only.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def beacon_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BeaconError)
        return JSONResponse(
            ErrorBody(error=exc.code, detail=exc.detail).model_dump(),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _json_safe_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            # Unparseable bodies are a different client bug from well-formed but wrong ones.
            body = ErrorBody(error="invalid_json", detail="request body is not valid JSON")
            return JSONResponse(body.model_dump(), status_code=400)
        body = ErrorBody(error="validation_error", detail=errors)
        return JSONResponse(body.model_dump(), status_code=422)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            ErrorBody(error=code, detail=exc.detail).model_dump(),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
        body = ErrorBody(error="internal_error", detail="internal server error")
        return JSONResponse(body.model_dump(), status_code=500)

    app.add_exception_handler(BeaconError, beacon_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
