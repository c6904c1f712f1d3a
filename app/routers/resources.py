"""The resource library over REST (issue 14): admins manage it, volunteers search it and send a
resource card into a chat they hold. Thin: authenticate, validate, call app.resources."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.audit.service import Actor
from app.core.errors import error_responses
from app.escalation.contacts import safety_contacts
from app.resources import canned, schemas, service
from app.resources.errors import InvalidLocale
from app.routers.deps import Admin, DbDep, Me, get_state
from app.routing.accounts import Principal
from app.triage.types import Level

router = APIRouter(tags=["resources"])
_AUTH = (401, 403)


def _actor(principal: Principal) -> Actor:
    return Actor(principal.role, principal.actor_id)


@router.post(
    "/v1/admin/resources",
    status_code=201,
    response_model=schemas.ResourceOut,
    responses=error_responses(400, *_AUTH, 422),
)
async def add_resource(body: schemas.ResourceIn, db: DbDep, admin: Admin) -> schemas.ResourceOut:
    """Admins: add a reviewed resource (a URL and/or a phone number, a short text)."""
    return service.out(await service.add(db, body, actor=_actor(admin)))


@router.get(
    "/v1/admin/resources", response_model=schemas.ResourceList, responses=error_responses(*_AUTH)
)
async def list_all(db: DbDep, admin: Admin) -> schemas.ResourceList:
    """Admins: the whole library, every locale."""
    rows = await service.search(db, limit=10_000)
    return schemas.ResourceList(resources=[service.out(r) for r in rows])


@router.delete(
    "/v1/admin/resources/{resource_id}",
    status_code=204,
    responses=error_responses(*_AUTH, 404, 422),
)
async def remove_resource(resource_id: uuid.UUID, db: DbDep, admin: Admin) -> Response:
    """Admins: remove a resource. Cards already sent stay in their transcripts."""
    await service.remove(db, resource_id, actor=_actor(admin))
    return Response(status_code=204)


@router.get(
    "/v1/resources", response_model=schemas.ResourceList, responses=error_responses(*_AUTH, 422)
)
async def search(
    db: DbDep,
    me: Me,
    q: Annotated[str | None, Query(max_length=100)] = None,
    locale: Annotated[str | None, Query(min_length=2, max_length=16)] = None,
    topic: Annotated[str | None, Query(max_length=32)] = None,
    level: Annotated[schemas.LevelName | None, Query()] = None,
) -> schemas.ResourceList:
    """Volunteers: search the library (words in the title, text or topics; all must match)."""
    try:
        wanted = schemas.primary_locale(locale) if locale is not None else None
    except ValueError as exc:
        raise InvalidLocale(str(exc)) from None
    rows = await service.search(
        db,
        locale=wanted,
        topic=topic.strip().lower() if topic else None,
        level=int(Level[level]) if level else None,
        q=q,
    )
    return schemas.ResourceList(resources=[service.out(r) for r in rows])


@router.post(
    "/v1/dashboard/sessions/{session_id}/resources",
    response_model=schemas.SentResource,
    responses=error_responses(400, *_AUTH, 404, 409, 422),
)
async def send_resource(
    session_id: uuid.UUID, body: schemas.SendResource, request: Request, me: Me
) -> schemas.SentResource:
    """Send a resource card into a chat you hold: stored in the transcript as a message of kind
    `resource` and delivered to the visitor, who sees it as a card (tap to call / open).
    Acknowledged only once committed; a retry with the same `client_msg_id` returns the first
    card's `seq`."""
    state = get_state(request)
    return await service.send(state.sessionmaker, state.committer, me, session_id, body)


# -- canned replies ------------------------------------------------------------------------------


@router.post(
    "/v1/admin/canned-replies",
    status_code=201,
    response_model=canned.CannedOut,
    responses=error_responses(400, *_AUTH, 422),
)
async def add_canned(body: canned.CannedIn, db: DbDep, admin: Admin) -> canned.CannedOut:
    """Admins: add a snippet (`422 unknown_placeholder` for anything in braces that is not one
    of the placeholders `GET /v1/canned-replies` lists)."""
    return canned.out(await canned.add(db, body, actor=_actor(admin)))


@router.get(
    "/v1/admin/canned-replies", response_model=canned.CannedList, responses=error_responses(*_AUTH)
)
async def list_canned(db: DbDep, admin: Admin) -> canned.CannedList:
    return canned.CannedList(replies=[canned.out(r) for r in await canned.listing(db)])


@router.delete(
    "/v1/admin/canned-replies/{reply_id}",
    status_code=204,
    responses=error_responses(*_AUTH, 404, 422),
)
async def remove_canned(reply_id: uuid.UUID, db: DbDep, admin: Admin) -> Response:
    await canned.remove(db, reply_id, actor=_actor(admin))
    return Response(status_code=204)


def _fills(request: Request, me: Principal, locale: str) -> dict[str, str]:
    contacts = safety_contacts(get_state(request).escalation.partners, locale)
    first = contacts.hotlines[0] if contacts.hotlines else None
    return {
        "volunteer_name": me.name,
        "hotline": first.phone if first else contacts.emergency.label,
        "hotline_name": first.name if first else "the emergency services",
        "emergency": contacts.emergency.label,
    }


@router.get(
    "/v1/canned-replies",
    response_model=canned.CannedForVolunteerList,
    responses=error_responses(*_AUTH, 422),
)
async def canned_for_me(
    request: Request,
    db: DbDep,
    me: Me,
    locale: Annotated[str | None, Query(min_length=2, max_length=16)] = None,
) -> canned.CannedForVolunteerList:
    """Volunteers: the snippets of a locale (default: your first language), each with `filled`,
    its placeholders filled for you on the server; send `filled` as an ordinary message."""
    try:
        wanted = schemas.primary_locale(locale) if locale else (me.languages or ("en",))[0]
    except ValueError as exc:
        raise InvalidLocale(str(exc)) from None
    values = _fills(request, me, wanted)
    rows = await canned.listing(db, locale=wanted)
    return canned.CannedForVolunteerList(
        placeholders=dict(canned.PLACEHOLDERS),
        replies=[canned.for_volunteer(row, values) for row in rows],
    )


__all__ = ["router"]
