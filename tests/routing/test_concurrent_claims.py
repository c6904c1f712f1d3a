"""Several OS processes claim the same sessions at once on Postgres: every session ends up
with at most one holder, and no volunteer is ever over capacity, with high/imminent chats
taking several slots (``high_urgency_slots``)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat.models import ChatSession
from app.core.db import create_sessionmaker, transaction
from app.routing.models import Assignment, Volunteer
from app.triage.types import Level
from tests.conftest import ROOT
from tests.routing.helpers import SLOTS, add_session, add_volunteer

PROCESSES = 6
SESSIONS = 120
VOLUNTEERS = 20
CAPACITY = 4  # 80 slots for 120 sessions (2 in 5 urgent): capacity stops the claimers


async def test_no_double_assignment_across_processes(
    engine: AsyncEngine, database_url: str
) -> None:
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as db:
        session_ids = [await add_session(db, urgency=i % 5, waited_s=i) for i in range(SESSIONS)]
        volunteer_ids: list[uuid.UUID] = []
        for _ in range(VOLUNTEERS):
            issued, _ = await add_volunteer(db, capacity=CAPACITY)
            volunteer_ids.append(issued.id)

    args = [
        sys.executable,
        "-m",
        "tests.routing.claimer",
        database_url,
        ",".join(map(str, session_ids)),
        ",".join(map(str, volunteer_ids)),
    ]
    procs = [
        await asyncio.create_subprocess_exec(
            *args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(PROCESSES)
    ]
    outputs = [await p.communicate() for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    won = sum(r["offer"] + r["pull"] for r in results)
    lost = sum(r["lost"] for r in results)
    print(f"claims won={won} lost_races={lost} per_process={results}")

    async with transaction(sessionmaker) as db:
        holders = (
            await db.execute(
                select(Assignment.session_id, func.count())
                .where(Assignment.session_id.in_(session_ids), Assignment.status == "active")
                .group_by(Assignment.session_id)
            )
        ).all()
        ever_accepted = (
            await db.execute(
                select(Assignment.session_id, func.count())
                .where(
                    Assignment.session_id.in_(session_ids),
                    Assignment.responded_at.is_not(None),
                )
                .group_by(Assignment.session_id)
            )
        ).all()
        volunteers = (
            await db.scalars(select(Volunteer).where(Volunteer.id.in_(volunteer_ids)))
        ).all()
        slots_per_volunteer = dict(
            (
                await db.execute(
                    select(Assignment.volunteer_id, func.sum(Assignment.slots))
                    .where(
                        Assignment.volunteer_id.in_(volunteer_ids),
                        Assignment.status.in_(("offered", "active")),
                    )
                    .group_by(Assignment.volunteer_id)
                )
            ).all()
        )
        taken = (
            await db.execute(
                select(ChatSession.urgency, Assignment.slots)
                .join(ChatSession, ChatSession.id == Assignment.session_id)
                .where(Assignment.session_id.in_(session_ids), Assignment.status == "active")
            )
        ).all()
    # Every claim a process won is exactly one active holder in the database.
    assert len(holders) == won
    assert all(count == 1 for _, count in holders)
    assert all(count == 1 for _, count in ever_accepted)
    # Calm chats took one slot; urgent ones their weight, or fewer only where that was all
    # that was free (never refused for it).
    assert all(slots == 1 for urgency, slots in taken if urgency < Level.high)
    assert all(1 <= slots <= SLOTS for urgency, slots in taken if urgency >= Level.high)
    assert any(slots == SLOTS for urgency, slots in taken if urgency >= Level.high)
    # Capacity was the binding constraint, and it held everywhere: every volunteer is exactly
    # full, and their load is exactly the slots their chats hold.
    assert sum(slots for _, slots in taken) == VOLUNTEERS * CAPACITY
    assert won < VOLUNTEERS * CAPACITY
    for volunteer in volunteers:
        assert volunteer.load == slots_per_volunteer.get(volunteer.id, 0)
        assert volunteer.load == CAPACITY
    assert lost > 0  # the processes really did race for the same sessions
