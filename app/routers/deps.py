"""Dependencies shared by the HTTP routers: app state and the per-request transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from app.main import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.beacon
    return state


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed if the handler returns, rolled back if it raises."""
    state = get_state(request)
    async with state.sessionmaker() as session, session.begin():
        yield session


StateDep = Annotated["AppState", Depends(get_state)]
# scope="function": the transaction commits before the response is sent, so a client is never
# told "done" about something that then fails to commit.
DbDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
