from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.audit.models import Event
from app.chat import events as chat_events
from app.chat.models import ChatSession
from app.core.db import transaction
from app.routing.accounts import IssuedAccount
from app.routing.assignments import LIVE_STATUSES
from app.routing.models import Assignment, Volunteer
from tests.routing.helpers import add_session, add_volunteer
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

FAST = {
    # Long enough that a loaded CI machine never lets an offer lapse between `offer` and the
    # test's `accept`; the tests about expiry ask for a short timeout themselves.
    "offer_timeout_s": 10.0,
    "routing_interval_s": 0.05,
    "volunteer_heartbeat_timeout_s": 30.0,
    "volunteer_grace_s": 0.5,
    "offer_decline_cooldown_s": 60.0,
    "ws_rate_limit_per_s": 200.0,
    "ws_rate_limit_burst": 200,
}


CLEANUP_LOCK_TIMEOUT_S = 30
# Who holds a lock the clean-up waits for: other backends' transactions, oldest first.
_LOCK_HOLDERS = text(
    "SELECT pid, state, application_name, now() - xact_start AS open_for, left(query, 200) "
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND xact_start IS NOT NULL ORDER BY xact_start"
)


async def end_live_work(db: AsyncSession) -> None:
    """Tests in one run share the database and run one after another: end whatever earlier
    tests left live, so that this test's router sees only this test's people."""
    if db.get_bind().dialect.name == "postgresql":
        # A row left locked by an earlier test's server once held this until pytest's 300 s
        # timeout, saying nothing. Fail sooner, naming who holds what.
        await db.execute(text(f"SET LOCAL lock_timeout = '{CLEANUP_LOCK_TIMEOUT_S}s'"))
    try:
        await db.execute(
            update(Assignment)
            .where(Assignment.status.in_(("offered", "active")))
            .values(status="closed", end_reason="test_cleanup")
        )
        await db.execute(
            update(ChatSession).where(ChatSession.status.in_(LIVE_STATUSES)).values(status="closed")
        )
        await db.execute(update(Volunteer).values(load=0, presence="offline"))
    except DBAPIError as exc:
        if "lock timeout" not in str(exc):
            raise
        engine = db.bind
        assert isinstance(engine, AsyncEngine)
        async with engine.connect() as other:
            holders = (await other.execute(_LOCK_HOLDERS)).all()
        raise AssertionError(
            f"clean-up waited {CLEANUP_LOCK_TIMEOUT_S} s for a lock; open transactions: {holders}"
        ) from exc


class World:
    """Committed test data on a live server's database (fresh ids: runs share the database)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.state = server.app.state.beacon

    async def clean_slate(self) -> None:
        async with transaction(self.state.sessionmaker) as db:
            await end_live_work(db)

    async def volunteer(self, **kwargs: Any) -> IssuedAccount:
        async with transaction(self.state.sessionmaker) as db:
            issued, _ = await add_volunteer(db, online=False, **kwargs)
        return issued

    async def triaged(self, session_id: uuid.UUID | str, urgency: int) -> None:
        """Stand-in for the triage engine (another package, still being tuned): raise a session's
        urgency exactly as the chat committer does - the row, the audit event, the bus hint."""
        sid = uuid.UUID(str(session_id))
        async with transaction(self.state.sessionmaker) as db:
            previous = await db.scalar(select(ChatSession.urgency).where(ChatSession.id == sid))
            await db.execute(
                update(ChatSession).where(ChatSession.id == sid).values(urgency=urgency)
            )
            await self.state.bus.publish_many(
                chat_events.urgency_raised(sid, urgency=urgency, previous=previous or 0, seq=0),
                db=db,
            )

    async def held_chat(
        self, first_text: str = "hello", *, token: str | None = None, capacity: int = 2
    ) -> tuple[VisitorClient, VolunteerClient]:
        """A visitor who said ``first_text`` and a volunteer (new unless ``token``) who accepted
        the offer: both sockets have seen the chat go live and the first message arrive."""
        if token is None:
            token = (await self.volunteer(capacity=capacity, name="V")).token
        visitor = await VisitorClient.open(self.server.ws_url)
        await visitor.say(first_text, "v-0")
        volunteer = await VolunteerClient.connect(self.server.ws_url, token)
        sid = visitor.session_id
        await volunteer.expect("offer", about(sid))
        await volunteer.send({"type": "accept", "session_id": sid})
        await volunteer.expect("assigned", about(sid))
        await volunteer.expect("message", about(sid, seq=1))
        await visitor.expect("status", lambda f: f["status"] == "active")
        return visitor, volunteer

    async def audit(self, subject_id: str, action: str | None = None) -> list[Event]:
        """The audit events about one subject, oldest first (only ``action``'s, if given)."""
        query = select(Event).where(Event.subject_id == subject_id).order_by(Event.id)
        if action is not None:
            query = query.where(Event.action == action)
        async with transaction(self.state.sessionmaker) as db:
            return list((await db.scalars(query)).all())

    async def session(self, **kwargs: Any) -> uuid.UUID:
        async with transaction(self.state.sessionmaker) as db:
            session_id = await add_session(db, **kwargs)
            await self.state.bus.publish(
                "queue", {"kind": "opened", "session_id": str(session_id)}, db=db
            )
        return session_id


@pytest.fixture
def world_factory(live_server_factory: Callable[..., Any]) -> Callable[..., Any]:
    async def make(**overrides: Any) -> World:
        server = await live_server_factory(**{**FAST, **overrides})
        world = World(server)
        await world.clean_slate()
        return world

    return make
