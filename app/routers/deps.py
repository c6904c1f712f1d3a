"""Dependencies shared by the HTTP routers: app state and the per-request transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden, Unauthorized
from app.resources.errors import AdminsOnly
from app.routing import accounts
from app.routing.accounts import Principal
from app.state import BeaconState, state_of


def get_state(request: Request) -> BeaconState:
    return state_of(request)


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed if the handler returns, rolled back if it raises."""
    state = get_state(request)
    async with state.sessionmaker() as session, session.begin():
        yield session


StateDep = Annotated[BeaconState, Depends(get_state)]
# scope="function": the transaction commits before the response is sent, so a client is never
# told "done" about something that then fails to commit.
DbDep = Annotated[AsyncSession, Depends(get_db, scope="function")]


_bearer = HTTPBearer(auto_error=False, description="a volunteer token from `beacon volunteer add`")


async def current_volunteer(
    db: DbDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return await accounts.authenticate(db, credentials.credentials)


async def current_supervisor(
    principal: Annotated[Principal, Depends(current_volunteer)],
) -> Principal:
    if not principal.is_supervisor:
        raise Forbidden("supervisors only")
    return principal


async def current_admin(
    principal: Annotated[Principal, Depends(current_volunteer)],
) -> Principal:
    """Admins manage reviewed content (resources, canned replies): a supervisor's rights over
    chats do not include editing what every volunteer sends."""
    if principal.role != "admin":
        raise AdminsOnly("admins only")
    return principal


# Volunteer and supervisor routes (the dashboard's and the handoff actions) authenticate alike.
Me = Annotated[Principal, Depends(current_volunteer)]
Supervisor = Annotated[Principal, Depends(current_supervisor)]
Admin = Annotated[Principal, Depends(current_admin)]
