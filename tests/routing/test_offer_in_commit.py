"""The imminent path as one step (issue 13): the group commit that stores a visitor's message
also records the offer to a free eligible volunteer, and the volunteer's socket in the same
process hears it (and every later message) exactly once.

Real uvicorn, real `websockets` clients, Postgres. "One commit" is checked where it is true:
the message row, the assignment row and the ``session_offered`` audit row carry the same
transaction id (Postgres' ``xmin``), and the offer is already in the database when the visitor's
``ack`` (sent only after the commit returned) arrives.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from app.core.db import transaction
from app.triage import Level
from tests.routing.wsclient import VisitorClient, VolunteerClient, about

CALM = "hi, is anyone there?"  # rated `none`: see bench/imminent_offer.py
IMMINENT = "I took 30 pills just now"  # SPEC §2's own example


async def _transaction_ids(world: Any, session_id: str, seq: int) -> dict[str, Any]:
    """The transaction that wrote the message ``seq``, the pending offer and its audit row."""
    async with transaction(world.state.sessionmaker) as db:
        row = (
            await db.execute(
                text(
                    "SELECT"
                    " (SELECT xmin::text FROM messages WHERE session_id = :s AND seq = :q)"
                    "   AS message,"
                    " (SELECT level FROM messages WHERE session_id = :s AND seq = :q) AS level,"
                    " (SELECT xmin::text FROM assignments"
                    "   WHERE session_id = :s AND status = 'offered') AS offer,"
                    " (SELECT xmin::text FROM events WHERE subject_type = 'session'"
                    "   AND subject_id = CAST(:s AS text) AND action = 'session_offered')"
                    "   AS audit"
                ),
                {"s": uuid.UUID(session_id), "q": seq},
            )
        ).one()
    return dict(row._mapping)


async def test_first_message_and_its_offer_commit_together(
    world_factory: Callable[..., Any],
) -> None:
    # No periodic pass during the test: only a wake-up or the commit itself could offer.
    world = await world_factory(routing_interval_s=60.0)
    account = await world.volunteer(capacity=2)
    volunteer = await VolunteerClient.connect(world.server.ws_url, account.token)
    visitor = await VisitorClient.open(world.server.ws_url)
    ack = await visitor.say(CALM, "m1")
    ids = await _transaction_ids(world, visitor.session_id, ack["seq"])
    assert ids["offer"] is not None, "no offer recorded when the ack arrived"
    assert ids["message"] == ids["offer"] == ids["audit"]
    await volunteer.expect("offer", about(visitor.session_id))
    later = await volunteer.drain(0.5)
    assert not [f for f in later if f.get("type") == "offer"], "the offer was delivered twice"
    await volunteer.close()
    await visitor.close()


async def test_an_imminent_message_is_offered_in_its_own_commit(
    world_factory: Callable[..., Any],
) -> None:
    """The bench's case: the visitor waits (nobody free speaks French) until their message turns
    imminent, which lets anyone free take them; the rise and the offer are one commit."""
    world = await world_factory(routing_interval_s=60.0, language_fallback_s=3600.0)
    account = await world.volunteer(capacity=3)
    volunteer = await VolunteerClient.connect(world.server.ws_url, account.token)
    visitor = await VisitorClient.open(world.server.ws_url, locale="fr")
    calm = await visitor.say(CALM, "m1")
    ids = await _transaction_ids(world, visitor.session_id, calm["seq"])
    assert ids["level"] == Level.none, "precondition: the calm text must stay `none`"
    assert ids["offer"] is None  # waiting for a French speaker
    urgent = await visitor.say(IMMINENT, "m2")
    ids = await _transaction_ids(world, visitor.session_id, urgent["seq"])
    assert ids["level"] == Level.imminent, "precondition: the text must be rated imminent"
    assert ids["offer"] is not None, "no offer recorded when the ack arrived"
    assert ids["message"] == ids["offer"] == ids["audit"]
    offer = await volunteer.expect("offer", about(visitor.session_id))
    assert offer["urgency"] == "imminent"
    await volunteer.close()
    await visitor.close()


async def test_same_process_delivery_sends_each_message_once(
    world_factory: Callable[..., Any],
) -> None:
    """The bus hands this process's events to its sockets at COMMIT and drops the NOTIFY that
    comes back: the volunteer's socket still gets every message once, in order."""
    world = await world_factory(routing_interval_s=60.0)
    account = await world.volunteer(capacity=2)
    volunteer = await VolunteerClient.connect(world.server.ws_url, account.token)
    visitor = await VisitorClient.open(world.server.ws_url)
    await visitor.say(CALM, "m1")
    await volunteer.expect("offer", about(visitor.session_id))
    await volunteer.send({"type": "accept", "session_id": visitor.session_id})
    await volunteer.expect("assigned", about(visitor.session_id))
    for n in range(2, 8):
        await visitor.say(f"still here {n}", f"m{n}")
    last = await volunteer.expect("message", about(visitor.session_id, seq=7))
    assert last["text"] == "still here 7"
    await volunteer.drain(0.5)
    frames = volunteer.seen  # every frame the socket got, whoever read it
    seqs = [f["seq"] for f in frames if f.get("type") == "message" and about(visitor.session_id)(f)]
    assert sorted(set(seqs)) == seqs, f"out of order or repeated: {seqs}"
    assert Counter(seqs) == {seq: 1 for seq in range(1, 8)}
    offers = [f for f in frames if f.get("type") == "offer" and about(visitor.session_id)(f)]
    assert len(offers) == 1
    await volunteer.close()
    await visitor.close()
