"""A claiming process for the concurrency test: ``python -m tests.routing.claimer URL ...``.

Each process hammers the same waiting sessions through the real claim paths (router offers +
accepts, and "next" pulls), as fast as it can, until none of its volunteers has a free slot or
nothing is left. It prints how many claims it won.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from app.core.db import create_engine, create_sessionmaker, transaction
from app.core.errors import BeaconError
from app.routing import accounts, assignments
from app.routing.models import Volunteer
from tests.routing.helpers import SLOTS


async def main(url: str, session_ids: list[uuid.UUID], volunteer_ids: list[uuid.UUID]) -> None:
    engine = create_engine(url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    won = {"offer": 0, "pull": 0, "lost": 0, "errors": 0}
    rng = random.Random()
    principals = {}
    async with transaction(sessionmaker) as db:
        for volunteer in (
            await db.scalars(select(Volunteer).where(Volunteer.id.in_(volunteer_ids)))
        ).all():
            principals[volunteer.id] = accounts.Principal(
                id=volunteer.id,
                role=volunteer.role,
                name=volunteer.name,
                languages=tuple(volunteer.languages),
                capacity=volunteer.capacity,
            )
    full: set[uuid.UUID] = set()
    idle_rounds = 0
    while len(full) < len(principals) and idle_rounds < 50:
        volunteer_id = rng.choice([v for v in principals if v not in full])
        me = principals[volunteer_id]
        candidates = session_ids[:]
        rng.shuffle(candidates)
        try:
            if rng.random() < 0.5:
                async with transaction(sessionmaker) as db:
                    await assignments.next_session(
                        db, me, candidates[:20], high_urgency_slots=SLOTS
                    )
                won["pull"] += 1
            else:
                target = candidates[0]
                async with transaction(sessionmaker) as db:
                    made = await assignments.offer(
                        db, target, me.id, timeout_s=60, high_urgency_slots=SLOTS
                    )
                if made is None:
                    won["lost"] += 1
                    idle_rounds += 1
                    continue
                async with transaction(sessionmaker) as db:
                    await assignments.accept(db, me, target)
                won["offer"] += 1
            idle_rounds = 0
        except assignments.AtCapacity:
            full.add(volunteer_id)
        except assignments.QueueEmpty:
            won["lost"] += 1
            idle_rounds += 1
        except BeaconError:
            won["lost"] += 1
        except DBAPIError:
            won["errors"] += 1
    await engine.dispose()
    print(json.dumps(won))


if __name__ == "__main__":
    url = sys.argv[1]
    sessions = [uuid.UUID(s) for s in sys.argv[2].split(",")]
    volunteers = [uuid.UUID(v) for v in sys.argv[3].split(",")]
    asyncio.run(main(url, sessions, volunteers))
