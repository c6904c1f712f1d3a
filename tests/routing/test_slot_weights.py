"""Weighted slots (SPEC §4: a ``high``+ chat may count as more than one slot).

The rule under test (app/routing/assignments, "Slot accounting"): an urgent chat is worth
``high_urgency_slots``; anyone with at least one free slot may still take it, and it then holds
as many as are free; each assignment gives back exactly what it holds; an urgent chat holding
less than its weight picks up the rest as slots free. Load never passes capacity.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from pydantic import ValidationError
from sqlalchemy import func, inspect, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.chat.models import ChatSession
from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker, transaction, utcnow
from app.core.errors import BeaconError
from app.core.migrate import alembic_config
from app.routing import assignments, views
from app.routing.dispatch import Candidate, Waiting, plan_offers
from app.routing.models import Assignment, Volunteer
from app.triage.types import Level
from tests import pg
from tests.routing.helpers import SLOTS, add_session, add_volunteer, hide_other_sessions
from tests.routing.wsclient import VolunteerClient

IMMINENT = int(Level.imminent)
HIGH = int(Level.high)


async def _load(db: AsyncSession, volunteer_id: uuid.UUID) -> int:
    load = await db.scalar(
        select(Volunteer.load)
        .where(Volunteer.id == volunteer_id)
        .execution_options(populate_existing=True)
    )
    assert load is not None
    return load


async def _slots(db: AsyncSession, session_id: uuid.UUID) -> int:
    slots = await db.scalar(
        select(Assignment.slots)
        .where(Assignment.session_id == session_id, Assignment.status.in_(("offered", "active")))
        .execution_options(populate_existing=True)
    )
    assert slots is not None
    return slots


async def _set_urgency(db: AsyncSession, session_id: uuid.UUID, urgency: int) -> None:
    await db.execute(
        update(ChatSession).where(ChatSession.id == session_id).values(urgency=urgency)
    )


def test_the_shipped_default_and_its_bounds() -> None:
    assert SLOTS == 2
    assert Settings(high_urgency_slots=1).high_urgency_slots == 1
    with pytest.raises(ValidationError):
        Settings(high_urgency_slots=0)
    assert assignments.slot_weight(IMMINENT, 3) == 3
    assert assignments.slot_weight(HIGH, 3) == 3
    assert assignments.slot_weight(int(Level.moderate), 3) == 1
    assert assignments.slot_weight(IMMINENT, 1) == 1


async def test_an_urgent_offer_takes_its_weight_and_every_ending_gives_it_back(
    db: AsyncSession,
) -> None:
    _, me = await add_volunteer(db, capacity=3)
    urgent = await add_session(db, urgency=IMMINENT)
    calm = await add_session(db, urgency=1)
    another = await add_session(db, urgency=0)

    made = await assignments.offer(db, urgent, me.id, timeout_s=20, high_urgency_slots=SLOTS)
    assert made is not None
    assert await _load(db, me.id) == SLOTS
    assert await _slots(db, urgent) == SLOTS
    # Declining gives back both slots; expiry likewise.
    await assignments.decline(db, me, urgent)
    assert await _load(db, me.id) == 0
    await assignments.offer(db, urgent, me.id, timeout_s=20, high_urgency_slots=SLOTS)
    await assignments.expire_offers(db, now=utcnow() + timedelta(seconds=21))
    assert await _load(db, me.id) == 0

    # Held: the imminent chat (2) plus one calm chat fills a capacity of 3 ...
    await assignments.claim(db, me, urgent, high_urgency_slots=SLOTS)
    await assignments.claim(db, me, calm, high_urgency_slots=SLOTS)
    assert await _load(db, me.id) == 3
    with pytest.raises(assignments.AtCapacity):
        await assignments.claim(db, me, another, high_urgency_slots=SLOTS)
    assert (
        await assignments.offer(db, another, me.id, timeout_s=20, high_urgency_slots=SLOTS) is None
    )
    # ... and closing it (the risk assessment lowers its urgency) gives back exactly 2.
    await assignments.close(db, me, urgent, disposition="supported", risk_level=0)
    assert await _load(db, me.id) == 1
    await assignments.release_by(db, me, calm)
    assert await _load(db, me.id) == 0


async def test_an_imminent_person_still_reaches_a_volunteer_with_one_free_slot(
    db: AsyncSession,
) -> None:
    _, me = await add_volunteer(db, capacity=3)
    for _ in range(2):
        await assignments.claim(db, me, await add_session(db), high_urgency_slots=SLOTS)
    assert await _load(db, me.id) == 2
    urgent = await add_session(db, urgency=IMMINENT)
    made = await assignments.offer(db, urgent, me.id, timeout_s=20, high_urgency_slots=SLOTS)
    assert made is not None  # never refused for its weight
    assert await _slots(db, urgent) == 1  # only what was free
    assert await _load(db, me.id) == 3  # clamped to capacity, never over
    await assignments.accept(db, me, urgent)
    await assignments.close(db, me, urgent, disposition="supported", risk_level=4)
    assert await _load(db, me.id) == 2  # gave back exactly the one it held

    # A volunteer whose whole capacity is one slot takes an imminent chat too.
    _, single = await add_volunteer(db, capacity=1)
    other = await add_session(db, urgency=IMMINENT)
    await assignments.claim(db, single, other, high_urgency_slots=SLOTS)
    assert await _load(db, single.id) == 1
    assert await _slots(db, other) == 1


async def test_slots_given_back_are_those_taken_whatever_the_urgency_became(
    db: AsyncSession,
) -> None:
    _, me = await add_volunteer(db, capacity=3)
    rose = await add_session(db, urgency=1)
    fell = await add_session(db, urgency=HIGH)
    await assignments.claim(db, me, rose, high_urgency_slots=SLOTS)
    await assignments.claim(db, me, fell, high_urgency_slots=SLOTS)
    assert await _load(db, me.id) == 1 + SLOTS
    await _set_urgency(db, rose, IMMINENT)
    await _set_urgency(db, fell, 0)
    await assignments.release_by(db, me, rose)
    assert await _load(db, me.id) == SLOTS
    await assignments.requeue_volunteer(db, me.id, include_active=True)
    assert await _load(db, me.id) == 0


async def test_warm_transfer_moves_the_weight(db: AsyncSession) -> None:
    _, me = await add_volunteer(db, capacity=3)
    _, peer = await add_volunteer(db, capacity=3)
    urgent = await add_session(db, urgency=IMMINENT)
    await assignments.claim(db, me, urgent, high_urgency_slots=SLOTS)
    await assignments.transfer(
        db,
        me,
        urgent,
        to_volunteer_id=peer.id,
        to_supervisor=False,
        timeout_s=20,
        high_urgency_slots=SLOTS,
    )
    # Both hold it while the transfer is open (the holder stays until the peer accepts).
    assert (await _load(db, me.id), await _load(db, peer.id)) == (SLOTS, SLOTS)
    await assignments.accept(db, peer, urgent)
    assert (await _load(db, me.id), await _load(db, peer.id)) == (0, SLOTS)
    # Cold transfer back to the queue gives the peer's slots back.
    await assignments.transfer(
        db,
        peer,
        urgent,
        to_volunteer_id=None,
        to_supervisor=False,
        timeout_s=20,
        high_urgency_slots=SLOTS,
    )
    assert await _load(db, peer.id) == 0


async def test_a_chat_that_turns_urgent_takes_the_slots_it_is_owed_when_free(
    db: AsyncSession,
) -> None:
    _, me = await add_volunteer(db, capacity=2)
    first = await add_session(db, urgency=1)
    second = await add_session(db, urgency=1)
    await assignments.claim(db, me, first, high_urgency_slots=SLOTS)
    await assignments.claim(db, me, second, high_urgency_slots=SLOTS)
    await _set_urgency(db, first, IMMINENT)
    owed = await assignments.under_weight(db, high_urgency_slots=SLOTS)
    mine = [o for o in owed if o.volunteer_id == me.id]
    assert len(mine) == 1
    # Full: nothing can be added, and nothing is taken away from anyone.
    assert await assignments.top_up(db, mine[0], high_urgency_slots=SLOTS) == 0
    assert await _slots(db, first) == 1
    assert await _load(db, me.id) == 2

    await assignments.close(db, me, second, disposition="supported", risk_level=0)
    assert await _load(db, me.id) == 1
    [held] = [
        o
        for o in await assignments.under_weight(db, high_urgency_slots=SLOTS)
        if o.volunteer_id == me.id
    ]
    assert await assignments.top_up(db, held, high_urgency_slots=SLOTS) == SLOTS - 1
    assert await _slots(db, first) == SLOTS
    assert await _load(db, me.id) == 2
    # A stale read (the slots it was read with no longer match) changes nothing.
    assert await assignments.top_up(db, held, high_urgency_slots=SLOTS) == 0
    assert not [
        o
        for o in await assignments.under_weight(db, high_urgency_slots=SLOTS)
        if o.volunteer_id == me.id
    ]
    await assignments.close(db, me, first, disposition="supported", risk_level=4)
    assert await _load(db, me.id) == 0
    # Weight 1 means no weighting at all: nothing is ever owed.
    assert await assignments.under_weight(db, high_urgency_slots=1) == []


def _volunteer(free: int, load: int, idle_s: float = 0.0) -> Candidate:
    return Candidate(
        id=uuid.uuid4(),
        languages=["en"],
        free=free,
        load=load,
        idle_since=utcnow() - timedelta(seconds=idle_s),
    )


def _waiting(urgency: int) -> Waiting:
    return Waiting(
        id=uuid.uuid4(), urgency=urgency, waiting_since=utcnow(), language="en", signals=[]
    )


def test_plan_counts_urgent_sessions_at_their_weight(settings: Settings) -> None:
    now = utcnow()
    urgent, calm = _waiting(IMMINENT), _waiting(0)
    alone = _volunteer(free=2, load=0)
    assert [
        (s.id, v.id) for s, v in plan_offers([urgent, calm], [alone], set(), now, settings)
    ] == [(urgent.id, alone.id)]
    unweighted = settings.model_copy(update={"high_urgency_slots": 1})
    again = _volunteer(free=2, load=0)
    assert len(plan_offers([urgent, calm], [again], set(), now, unweighted)) == 2

    # Someone with room for the full weight is preferred over someone less loaded without it...
    roomy, tight = _volunteer(free=3, load=1), _volunteer(free=1, load=0, idle_s=100)
    [(_, chosen)] = plan_offers([urgent], [roomy, tight], set(), now, settings)
    assert chosen.id == roomy.id
    # ...but if one free slot is all there is, the urgent person still gets it.
    last = _volunteer(free=1, load=2)
    [(_, chosen)] = plan_offers([_waiting(HIGH)], [last], set(), now, settings)
    assert chosen.id == last.id
    assert (last.free, last.load) == (0, 3)


async def test_concurrent_claims_top_ups_and_releases_never_pass_capacity(
    engine: AsyncEngine,
) -> None:
    """Many connections at once on one volunteer: claims of urgent and calm chats, urgency
    rises with top-ups, releases. Afterwards the volunteer's load is exactly the slots their
    open assignments hold, and it was never over capacity (the CHECK-free invariant below)."""
    sessionmaker = create_sessionmaker(engine)
    capacity = 4
    async with transaction(sessionmaker) as db:
        _, me = await add_volunteer(db, capacity=capacity)
        sessions = [
            await add_session(db, urgency=(IMMINENT if i % 4 == 0 else 1)) for i in range(30)
        ]
    rng = random.Random(7)
    peaks: list[int] = []
    done = {"claim": 0, "top_up": 0, "release": 0}

    async def held_by_me() -> list[uuid.UUID]:
        async with transaction(sessionmaker) as db:
            rows = await db.scalars(
                select(Assignment.session_id).where(
                    Assignment.volunteer_id == me.id, Assignment.status == "active"
                )
            )
            return list(rows.all())

    async def step(local: random.Random) -> str:
        action = local.random()
        held = await held_by_me()
        if action < 0.4 or not held:
            async with transaction(sessionmaker) as db:
                await assignments.claim(db, me, local.choice(sessions), high_urgency_slots=SLOTS)
            return "claim"
        if action < 0.65:
            # As in production: the chat side raises the urgency, the router tops up later.
            async with transaction(sessionmaker) as db:
                await _set_urgency(db, local.choice(held), IMMINENT)
            added = 0
            async with transaction(sessionmaker) as db:
                owed = await assignments.under_weight(db, high_urgency_slots=SLOTS)
            for one in owed:
                if one.volunteer_id == me.id:
                    async with transaction(sessionmaker) as db:
                        added += await assignments.top_up(db, one, high_urgency_slots=SLOTS)
            return "top_up" if added else "none"
        async with transaction(sessionmaker) as db:
            await assignments.release_by(db, me, local.choice(held))
        return "release"

    async def worker(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(25):
            try:
                kind = await step(local)
            except (BeaconError, DBAPIError):
                continue  # lost a race (taken, at capacity, not held, deadlock victim): fine
            done[kind] = done.get(kind, 0) + 1
            async with transaction(sessionmaker) as db:
                peaks.append(await _load(db, me.id))

    # Which actions win their races depends on the interleaving: a top-up needs a held chat
    # whose urgency rose while the volunteer still has room, which some rounds never meet. So
    # the race runs again (the invariants hold across every round) until each kind happened.
    for _ in range(6):
        await asyncio.gather(*(worker(rng.randrange(1 << 30)) for _ in range(8)))
        if all(done[k] for k in ("claim", "top_up", "release")):
            break
    async with transaction(sessionmaker) as db:
        load = await _load(db, me.id)
        held = await db.scalar(
            select(func.coalesce(func.sum(Assignment.slots), 0)).where(
                Assignment.volunteer_id == me.id, Assignment.status.in_(("offered", "active"))
            )
        )
        holders = (
            await db.execute(
                select(Assignment.session_id, func.count())
                .where(Assignment.session_id.in_(sessions), Assignment.status == "active")
                .group_by(Assignment.session_id)
            )
        ).all()
        await db.execute(
            update(ChatSession).where(ChatSession.id.in_(sessions)).values(status="closed")
        )
        await db.execute(
            update(Assignment)
            .where(Assignment.session_id.in_(sessions), Assignment.status == "active")
            .values(status="closed")
        )
    assert peaks
    print(f"slot-weight race: actions={done} peak_load={max(peaks)}")
    assert all(done[k] for k in ("claim", "top_up", "release")), done
    assert max(peaks) <= capacity
    assert load == held
    assert load <= capacity
    assert all(count == 1 for _, count in holders)


async def test_live_router_offers_an_urgent_chat_at_its_weight(
    world_factory: Callable[..., Any],
) -> None:
    """Real server: a volunteer of capacity 2 offered an imminent chat is full; a calm one
    waiting goes to the next volunteer instead, and comes back once the imminent chat ends."""
    world = await world_factory()
    a_account = await world.volunteer(capacity=2, name="A")
    b_account = await world.volunteer(capacity=2, name="B")
    urgent = await world.session(urgency=IMMINENT, waited_s=1)
    a = await VolunteerClient.connect(world.server.ws_url, a_account.token)
    offer = await a.expect("offer")
    assert offer["session_id"] == str(urgent)
    await a.send({"type": "accept", "session_id": str(urgent)})
    await a.expect("assigned")
    calm = await world.session(urgency=0)
    assert [f for f in await a.drain(0.4) if f.get("type") == "offer"] == []
    b = await VolunteerClient.connect(world.server.ws_url, b_account.token)
    assert (await b.expect("offer"))["session_id"] == str(calm)

    async with transaction(world.state.sessionmaker) as db:
        volunteer = await db.get(Volunteer, a_account.id)
        assert volunteer is not None
        assert volunteer.load == volunteer.capacity == 2
    await a.send(
        {"type": "close", "session_id": str(urgent), "disposition": "supported", "risk_level": 0}
    )
    await a.expect("session", lambda f: f.get("status") == "closed")
    async with transaction(world.state.sessionmaker) as db:
        volunteer = await db.get(Volunteer, a_account.id)
        assert volunteer is not None
        assert volunteer.load == 0
    await a.close()
    await b.close()


async def test_live_router_tops_up_a_chat_that_turns_imminent(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory()
    account = await world.volunteer(capacity=3, name="T")
    session_id = await world.session(urgency=1)
    client = await VolunteerClient.connect(world.server.ws_url, account.token)
    await client.expect("offer")
    await client.send({"type": "accept", "session_id": str(session_id)})
    await client.expect("assigned")
    await world.triaged(session_id, IMMINENT)  # wakes the router, which tops up first
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        async with transaction(world.state.sessionmaker) as db:
            volunteer = await db.get(Volunteer, account.id)
            assert volunteer is not None
            slots = await _slots(db, session_id)
        if volunteer.load == SLOTS and slots == SLOTS:
            break
        assert asyncio.get_running_loop().time() < deadline, (volunteer.load, slots)
        await asyncio.sleep(0.05)
    await client.send(
        {
            "type": "close",
            "session_id": str(session_id),
            "disposition": "supported",
            "risk_level": 0,
        }
    )
    await client.expect("session", lambda f: f.get("status") == "closed")
    async with transaction(world.state.sessionmaker) as db:
        volunteer = await db.get(Volunteer, account.id)
        assert volunteer is not None
        assert volunteer.load == 0
    await client.close()


# -- migration 0006 -----------------------------------------------------------------------------


async def _round_trip(url: str) -> None:
    """Up; an open urgent chat holding 2 slots; down gives the extra slot back (the old code
    frees one per assignment); up again restores the column with its default."""
    config = alembic_config(url)
    await asyncio.to_thread(command.upgrade, config, "heads")
    engine = create_engine(url, pool_size=1)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with transaction(sessionmaker) as db:
            await hide_other_sessions(db)
            _, me = await add_volunteer(db, capacity=3)
            urgent = await add_session(db, urgency=IMMINENT)
            calm = await add_session(db, urgency=0)
            await assignments.claim(db, me, urgent, high_urgency_slots=SLOTS)
            await assignments.claim(db, me, calm, high_urgency_slots=SLOTS)
        await engine.dispose()
        await asyncio.to_thread(command.downgrade, config, "0005_retention")
        async with engine.connect() as conn:
            load = await conn.scalar(select(Volunteer.load).where(Volunteer.id == me.id))
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("assignments")}
            )
        assert load == 2  # one slot per open assignment, as the old code counts
        assert "slots" not in columns
        await engine.dispose()
        await asyncio.to_thread(command.upgrade, config, "heads")
        async with transaction(sessionmaker) as db:
            assert await _slots(db, urgent) == 1  # the default: what the old code took
            await assignments.close(db, me, urgent, disposition="supported", risk_level=0)
            await assignments.close(db, me, calm, disposition="supported", risk_level=0)
            assert await _load(db, me.id) == 0
    finally:
        await engine.dispose()


async def test_migration_0006_up_down_up_on_sqlite(tmp_path: Path) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'slots.db'}")


async def test_migration_0006_up_down_up_on_postgres(pg_server: pg.PgServer) -> None:
    url = await pg.create_database(pg_server.admin_url, prefix="beacon_slots_migrate")
    try:
        await _round_trip(url)
    finally:
        await pg.drop_database(pg_server.admin_url, url)


async def test_free_capacity_shown_on_the_dashboard_counts_the_weight(db: AsyncSession) -> None:
    before = (await views.metrics_summary(db)).free_slots_online
    issued, me = await add_volunteer(db, capacity=3)
    await assignments.claim(
        db, me, await add_session(db, urgency=IMMINENT), high_urgency_slots=SLOTS
    )
    assert (await views.metrics_summary(db)).free_slots_online - before == 3 - SLOTS
    volunteer = await db.get(Volunteer, issued.id, populate_existing=True)
    assert volunteer is not None
    status = await views.volunteer_status(db, volunteer)
    assert (status.capacity, status.load, len(status.sessions)) == (3, SLOTS, 1)
