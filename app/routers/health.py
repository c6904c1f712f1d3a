"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from app.core.errors import ServiceUnavailable, error_responses
from app.core.migrate import current_revision, head_revision
from app.routers.deps import get_state

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: str
    revision: str | None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses=error_responses(503))
async def readyz(request: Request) -> Ready:
    state = get_state(request)
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        revision = await current_revision(state.engine)
    except Exception as exc:
        raise ServiceUnavailable("database unreachable") from exc
    head = head_revision()
    if revision != head:
        raise ServiceUnavailable(f"migrations not at head ({revision} != {head})")
    return Ready(status="ok", database=state.engine.dialect.name, revision=revision)


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(get_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
