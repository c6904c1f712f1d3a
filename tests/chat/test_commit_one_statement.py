"""The group commit's one-statement path (app/chat/commit_fast.py) on Postgres: taken for the
messages of a conversation under way, and never wrong when its memory of a session row is."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.models import Event
from app.bus import InProcessBus, session_channel
from app.chat.committer import MessageCommitter, NewMessage
from app.chat.errors import SessionClosed
from app.chat.models import ChatSession, Message
from app.chat.service import SessionStatus, change_status
from app.core.db import transaction
from app.triage import Level, TriageResult
from tests.chat.committing import Factory, calm, new_session, seqs, statements_of, two_buses


def commits(committer: MessageCommitter) -> tuple[int, int]:
    """(one-statement commits, locked commits) so far."""
    registry = committer._metrics.registry

    def count(path: str) -> int:
        return int(registry.get_sample_value("beacon_chat_commits_total", {"path": path}) or 0)

    return count("one_statement"), count("locked")


def plan_is_high(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
    """Triage that rates "i have a plan" high and anything else none."""
    return [
        TriageResult(
            level=Level.high if text == "i have a plan" else Level.none,
            score=0.5,
            signals=(),
            model_version="t",
        )
        for text, _ in items
    ]


def missed(committer: MessageCommitter) -> int:
    """Guarded statements that stored nothing."""
    registry = committer._metrics.registry
    return int(registry.get_sample_value("beacon_chat_commits_total", {"path": "missed"}) or 0)


def visitor(session_id: uuid.UUID, text: str, client_msg_id: str | None = None) -> NewMessage:
    return NewMessage(
        session_id=session_id, sender="visitor", text=text, client_msg_id=client_msg_id
    )


async def under_way(committer: MessageCommitter, session_id: uuid.UUID) -> None:
    """Two messages: the first joins the queue (locked, and not remembered: it may be offered
    in that commit), the second leaves the row remembered as this process committed it."""
    await committer.submit(visitor(session_id, "hi"))
    await committer.submit(visitor(session_id, "are you there"))


async def last_seq(engine: AsyncEngine, session_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        value = await conn.scalar(select(ChatSession.last_seq).where(ChatSession.id == session_id))
    assert value is not None
    return value


async def test_a_conversation_under_way_is_stored_by_one_statement_each_batch(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    """No BEGIN, lock or COMMIT of its own: one statement per batch, visitor and volunteer
    messages alike, gap-free, and the context it triaged with is the conversation's."""
    asked: list[tuple[str, tuple[str, ...]]] = []

    def triage(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        asked.extend((text, tuple(context)) for text, context in items)
        return calm(items)

    committer: MessageCommitter = await committer_factory(triage=triage, context_size=3)
    session_id = await new_session(sessionmaker)
    await under_way(committer, session_id)
    fast, locked = commits(committer)
    with statements_of(committer) as sent:
        stored = []
        for sender, text in [("visitor", "a"), ("volunteer", "b"), ("visitor", "c")]:
            message = NewMessage(session_id=session_id, sender=sender, text=text)
            stored.append(await committer.submit(message))
    assert [s.seq for s in stored] == [3, 4, 5]
    assert commits(committer) == (fast + 3, locked)
    assert len(sent) == 3, sent
    assert all(q.lstrip().startswith("WITH") and "moved AS" in q for q in sent)
    assert [seq for seq, _ in await seqs(engine, session_id)] == [1, 2, 3, 4, 5]
    assert await last_seq(engine, session_id) == 5
    assert asked[-2:] == [("a", ("hi", "are you there")), ("c", ("hi", "are you there", "a"))]


async def test_a_batch_is_split_by_session_between_the_two_paths(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    """One batch: a conversation under way, a visitor's first message (it joins the queue)
    and a message that raises urgency. The first is stored by the statement, the other two the
    locked way, each exactly as it would be alone."""

    committer: MessageCommitter = await committer_factory(triage=plan_is_high, linger_s=0.05)
    plain, rising, new = [await new_session(sessionmaker) for _ in range(3)]
    for session_id in (plain, rising):
        await under_way(committer, session_id)
    fast, locked = commits(committer)
    stored = await asyncio.gather(
        committer.submit(visitor(plain, "ok")),
        committer.submit(visitor(new, "hello")),
        committer.submit(visitor(rising, "i have a plan")),
        committer.submit(visitor(plain, "still ok")),
    )
    assert [(s.session_id, s.seq) for s in stored] == [
        (plain, 3),
        (new, 1),
        (rising, 3),
        (plain, 4),
    ]
    assert stored[2].urgency_raised
    assert commits(committer) == (fast + 1, locked + 1)
    for session_id, last in ((plain, 4), (rising, 3), (new, 1)):
        assert await last_seq(engine, session_id) == last
        assert [seq for seq, _ in await seqs(engine, session_id)] == list(range(1, last + 1))


async def test_a_row_another_instance_moved_is_stored_the_locked_way_without_a_gap(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    ours: MessageCommitter = await committer_factory(triage=calm)
    theirs: MessageCommitter = await committer_factory(triage=calm)
    session_id = await new_session(sessionmaker)
    await under_way(ours, session_id)
    assert (await theirs.submit(visitor(session_id, "from the other instance"))).seq == 3
    fast, locked = commits(ours)
    assert (await ours.submit(visitor(session_id, "ours again"))).seq == 4
    assert commits(ours) == (fast, locked + 1)  # the guard stored nothing; the lock did
    assert missed(ours) == 1  # by the guard (the seq's unique key is only the backstop)
    # A conversation two instances write would miss every time: locked, without trying.
    assert (await ours.submit(visitor(session_id, "and again"))).seq == 5
    assert commits(ours) == (fast, locked + 2)
    assert missed(ours) == 1
    assert [seq for seq, _ in await seqs(engine, session_id)] == [1, 2, 3, 4, 5]
    other = await new_session(sessionmaker)  # other conversations are not held back
    await under_way(ours, other)
    await ours.submit(visitor(other, "fine"))
    assert commits(ours)[0] == fast + 1


async def test_two_instances_writing_one_conversation_at_once_never_share_a_seq(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    # Both keep trying the one statement (no pause after a miss), so that it races the lock.
    ours: MessageCommitter = await committer_factory(triage=calm, one_statement_shared_s=0)
    theirs: MessageCommitter = await committer_factory(triage=calm, one_statement_shared_s=0)
    session_id = await new_session(sessionmaker)
    await under_way(ours, session_id)
    await theirs.submit(visitor(session_id, "warm"))

    async def chat(committer: MessageCommitter, name: str) -> list[int]:
        got = []
        for i in range(25):
            message = visitor(session_id, f"{name} {i}", client_msg_id=f"{name}-{i}")
            got.append((await committer.submit(message)).seq)
        return got

    both = await asyncio.gather(chat(ours, "a"), chat(theirs, "b"), chat(ours, "c"))
    assert sorted(seq for got in both for seq in got) == list(range(4, 79))
    for got in both:
        assert got == sorted(got)  # each sender's messages in the order sent
    stored = await seqs(engine, session_id)
    assert [seq for seq, _ in stored] == list(range(1, 79))
    assert await last_seq(engine, session_id) == 78
    assert commits(ours)[0] + commits(theirs)[0] > 0  # the one statement raced the lock


async def test_a_status_changed_elsewhere_costs_one_miss(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """A claim (waiting → active) is not another writer of messages: after one miss and the
    locked commit that follows, the conversation is stored in one statement again."""
    committer: MessageCommitter = await committer_factory(triage=calm)
    session_id = await new_session(sessionmaker)
    await under_way(committer, session_id)
    async with transaction(sessionmaker) as db:
        await change_status(
            db, InProcessBus(), session_id=session_id, to=SessionStatus.active, reason="test"
        )
    fast, locked = commits(committer)
    assert (await committer.submit(visitor(session_id, "hello?"))).seq == 3
    assert (commits(committer), missed(committer)) == ((fast, locked + 1), 1)
    assert (await committer.submit(visitor(session_id, "thanks"))).seq == 4
    assert (commits(committer), missed(committer)) == ((fast + 1, locked + 1), 1)


async def test_this_processs_two_workers_are_not_taken_for_another_writer(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    """Both workers commit one conversation at once: a batch whose session the other worker
    is committing goes the locked way (the lock serialises them) instead of racing it, and the
    conversation is not held to the locked path afterwards as if another instance wrote it."""

    def slow(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        time.sleep(0.02)  # as the encoder takes a while: the other worker commits meanwhile
        return calm(items)

    committer: MessageCommitter = await committer_factory(triage=slow, workers=2)
    session_id = await new_session(sessionmaker)
    await under_way(committer, session_id)

    async def staggered(i: int) -> None:
        await asyncio.sleep(0.005 * i)  # each while the one before is being triaged
        await committer.submit(visitor(session_id, f"x{i}"))

    await asyncio.gather(*(staggered(i) for i in range(8)))
    assert [seq for seq, _ in await seqs(engine, session_id)] == list(range(1, 11))
    fast, locked = commits(committer)
    assert (await committer.submit(visitor(session_id, "after"))).seq == 11
    assert commits(committer) == (fast + 1, locked)


async def test_a_session_closed_elsewhere_refuses_the_message(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    committer: MessageCommitter = await committer_factory(triage=calm)
    session_id = await new_session(sessionmaker)
    await under_way(committer, session_id)
    async with transaction(sessionmaker) as db:
        await change_status(
            db, InProcessBus(), session_id=session_id, to=SessionStatus.closed, reason="test"
        )
    with pytest.raises(SessionClosed):
        await committer.submit(visitor(session_id, "too late"))
    assert [seq for seq, _ in await seqs(engine, session_id)] == [1, 2]
    assert await last_seq(engine, session_id) == 2


async def test_urgency_raised_elsewhere_is_what_the_message_reports(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The plan reads the row's urgency (a message's outcome carries it, and a lower level
    must not look like a rise): a row whose urgency moved is not stored from memory."""
    committer: MessageCommitter = await committer_factory(triage=calm)
    session_id = await new_session(sessionmaker)
    await under_way(committer, session_id)
    async with transaction(sessionmaker) as db:
        await db.execute(update(ChatSession).where(ChatSession.id == session_id).values(urgency=3))
    stored = await committer.submit(visitor(session_id, "ok"))
    assert (stored.seq, stored.urgency, stored.urgency_raised) == (3, 3, False)


async def test_a_rise_in_urgency_is_audited_and_announced(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    committer: MessageCommitter = await committer_factory(triage=plan_is_high)
    session_id = await new_session(sessionmaker)
    await under_way(committer, session_id)
    asked = 0

    def counted(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        nonlocal asked
        asked += len(items)
        return plan_is_high(items)

    committer._triage = counted
    stored = await committer.submit(visitor(session_id, "i have a plan"))
    assert (stored.seq, stored.urgency, stored.urgency_raised) == (3, int(Level.high), True)
    assert asked == 1  # triaged once, though tried both ways
    async with engine.connect() as conn:
        rises = await conn.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.subject_id == str(session_id), Event.action == "urgency_raised")
        )
        urgency = await conn.scalar(select(ChatSession.urgency).where(ChatSession.id == session_id))
    assert (rises, urgency) == (1, int(Level.high))


async def test_a_resend_of_a_stored_message_gets_its_original_seq(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    """The statement has no ON CONFLICT: a resend fails it whole (nothing stored) and the
    locked path answers the resend and stores the rest of the batch."""
    committer: MessageCommitter = await committer_factory(triage=calm, linger_s=0.05)
    session_id = await new_session(sessionmaker)
    await under_way(committer, session_id)
    first = visitor(session_id, "a", client_msg_id="a")
    assert (await committer.submit(first)).seq == 3
    resent, new = await asyncio.gather(
        committer.submit(first), committer.submit(visitor(session_id, "b", client_msg_id="b"))
    )
    assert (resent.seq, resent.duplicate) == (3, True)
    assert (new.seq, new.duplicate) == (4, False)
    assert await seqs(engine, session_id) == [(1, None), (2, None), (3, "a"), (4, "b")]
    async with engine.connect() as conn:
        stored = await conn.scalar(
            select(func.count()).select_from(Message).where(Message.session_id == session_id)
        )
    assert stored == 4


async def test_other_instances_and_this_one_hear_each_message_once_in_order(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    database_url: str,
) -> None:
    async with two_buses(database_url, engine) as (ours, theirs):
        committer: MessageCommitter = await committer_factory(triage=calm, bus=ours)
        session_id = await new_session(sessionmaker)
        await under_way(committer, session_id)
        there = theirs.subscribe(session_channel(session_id))
        here = ours.subscribe(session_channel(session_id))
        fast, _ = commits(committer)
        for text in ("x", "y", "z"):
            await committer.submit(visitor(session_id, text))
        assert commits(committer)[0] == fast + 3
        for heard in (there, here):
            payloads = [await asyncio.wait_for(heard.get(), 5) for _ in range(3)]
            assert [(p["kind"], p["seq"]) for p in payloads] == [
                ("message", 3),
                ("message", 4),
                ("message", 5),
            ]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(heard.get(), 0.3)


async def test_switched_off_every_batch_is_locked(
    committer_factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    committer: MessageCommitter = await committer_factory(triage=calm, one_statement=False)
    session_id = await new_session(sessionmaker)
    await under_way(committer, session_id)
    for text in ("x", "y"):
        await committer.submit(visitor(session_id, text))
    assert commits(committer) == (0, 4)
