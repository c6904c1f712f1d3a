"""The group committer on Postgres (real commits, fresh sessions per test)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Collection, Sequence

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.models import Event
from app.bus import InProcessBus, session_channel
from app.chat.committer import MessageCommitter, NewMessage
from app.chat.errors import SessionClosed, SessionNotFound
from app.chat.models import ChatSession, Message
from app.chat.service import SessionStatus, change_status
from app.core.db import transaction
from app.triage import Level, TriageResult, assess_many
from tests.chat.committing import (
    Factory,
    calm,
    new_session,
    recording,
    seqs,
    statements_of,
    two_buses,
)


async def test_concurrent_messages_share_commits_and_get_gap_free_seqs(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    committer: MessageCommitter = await committer_factory()
    sessions = [await new_session(sessionmaker) for _ in range(5)]
    results = await asyncio.gather(
        *(
            committer.submit(
                NewMessage(session_id=s, sender="visitor", text=f"{i}", client_msg_id=f"{s}-{i}")
            )
            for i in range(40)
            for s in sessions
        )
    )
    assert all(not r.duplicate for r in results)
    for s in sessions:
        stored = await seqs(engine, s)
        assert [seq for seq, _ in stored] == list(range(1, 41))
        # Submission order is kept within a session.
        assert [cid for _, cid in stored] == [f"{s}-{i}" for i in range(40)]
    registry = committer._metrics.registry
    batches = registry.get_sample_value("beacon_chat_commit_batch_size_count")
    assert batches is not None
    assert batches < 200  # 200 messages shared far fewer commits


async def test_two_instances_interleaving_on_one_session(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    a: MessageCommitter = await committer_factory()
    b: MessageCommitter = await committer_factory()
    session_id = await new_session(sessionmaker)
    sends = [
        (a if i % 2 else b).submit(
            NewMessage(session_id=session_id, sender="visitor", text="x", client_msg_id=f"m{i}")
        )
        for i in range(60)
    ]
    # Every message also resent through the other instance at the same time.
    resends = [
        (b if i % 2 else a).submit(
            NewMessage(session_id=session_id, sender="visitor", text="x", client_msg_id=f"m{i}")
        )
        for i in range(60)
    ]
    results = await asyncio.gather(*sends, *resends)
    by_id: dict[str, set[int]] = {}
    for r in results:
        by_id.setdefault(r.client_msg_id or "", set()).add(r.seq)
    assert all(len(s) == 1 for s in by_id.values())  # original and resend: one seq
    stored = await seqs(engine, session_id)
    assert [seq for seq, _ in stored] == list(range(1, 61))
    assert len({cid for _, cid in stored}) == 60
    assert sum(r.duplicate for r in results) == 60


async def test_duplicates_within_one_batch_are_folded(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    committer: MessageCommitter = await committer_factory(linger_s=0.05)
    session_id = await new_session(sessionmaker)
    message = NewMessage(session_id=session_id, sender="visitor", text="hi", client_msg_id="one")
    results = await asyncio.gather(*(committer.submit(message) for _ in range(5)))
    assert {r.seq for r in results} == {1}
    assert sum(not r.duplicate for r in results) == 1
    # Same client_msg_id from another sender is a different message.
    volunteer = await committer.submit(
        NewMessage(session_id=session_id, sender="volunteer", text="hello", client_msg_id="one")
    )
    assert volunteer.seq == 2
    assert len(await seqs(engine, session_id)) == 2


async def test_triage_sees_the_conversation_so_far(
    committer_factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    calls, triage = recording(assess_many)
    committer: MessageCommitter = await committer_factory(triage=triage, context_size=3)
    session_id = await new_session(sessionmaker)
    await committer.submit(NewMessage(session_id=session_id, sender="visitor", text="one"))
    await committer.submit(NewMessage(session_id=session_id, sender="volunteer", text="vol"))
    # These two share a batch: the second must still see the first.
    await asyncio.gather(
        *(
            committer.submit(NewMessage(session_id=session_id, sender="visitor", text=t))
            for t in ("two", "three")
        )
    )
    await committer.submit(NewMessage(session_id=session_id, sender="visitor", text="four"))
    assert calls == [
        ("one", ()),
        ("two", ("one",)),
        ("three", ("one", "two")),
        ("four", ("one", "two", "three")),
    ]


async def test_urgency_only_rises_and_every_rise_is_audited(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    levels = iter([Level.low, Level.high, Level.none, Level.moderate, Level.imminent])

    def scripted(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        results = []
        for _ in items:
            level = next(levels)
            results.append(
                TriageResult(
                    level=level, score=level / 4, signals=(f"sig:{level.name}",), model_version="t"
                )
            )
        return results

    committer: MessageCommitter = await committer_factory(triage=scripted)
    session_id = await new_session(sessionmaker)
    bus = committer._bus
    hints = bus.subscribe(session_channel(session_id))
    urgencies = []
    for i in range(5):
        stored = await committer.submit(
            NewMessage(session_id=session_id, sender="visitor", text=f"m{i}")
        )
        urgencies.append(stored.urgency)
    assert urgencies == [1, 3, 3, 3, 4]
    async with engine.connect() as conn:
        session = (
            await conn.execute(select(ChatSession).where(ChatSession.id == session_id))
        ).one()
        rises = (
            await conn.execute(
                select(Event.details)
                .where(Event.subject_id == str(session_id), Event.action == "urgency_raised")
                .order_by(Event.id)
            )
        ).all()
    assert session.urgency == 4
    assert session.signals == ["sig:low", "sig:high", "sig:none", "sig:moderate", "sig:imminent"]
    assert [(d["from"], d["to"], d["seq"]) for (d,) in rises] == [(0, 1, 1), (1, 3, 2), (3, 4, 5)]
    kinds = []
    while not hints._queue.empty():
        kinds.append((await hints.get())["kind"])
    assert kinds.count("message") == 5
    assert kinds.count("urgency") == 3


async def test_a_triage_bug_never_loses_the_message(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    def broken(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        raise ZeroDivisionError

    committer: MessageCommitter = await committer_factory(triage=broken)
    session_id = await new_session(sessionmaker)
    stored = await committer.submit(
        NewMessage(session_id=session_id, sender="visitor", text="help")
    )
    assert stored.seq == 1
    assert stored.level == Level.moderate  # fail safe: a human must look
    async with engine.connect() as conn:
        row = (await conn.execute(select(Message).where(Message.session_id == session_id))).one()
    assert row.signals == ["triage:error"]
    assert row.text == "help"


async def test_closed_and_unknown_sessions_are_refused_without_hurting_the_batch(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    committer: MessageCommitter = await committer_factory(linger_s=0.05)
    open_id, closed_id = await new_session(sessionmaker), await new_session(sessionmaker)
    async with transaction(sessionmaker) as db:
        await change_status(
            db, InProcessBus(), session_id=closed_id, to=SessionStatus.closed, reason="test"
        )
    results = await asyncio.gather(
        committer.submit(NewMessage(session_id=open_id, sender="visitor", text="fine")),
        committer.submit(NewMessage(session_id=closed_id, sender="visitor", text="late")),
        committer.submit(NewMessage(session_id=uuid.uuid4(), sender="visitor", text="who")),
        return_exceptions=True,
    )
    assert not isinstance(results[0], BaseException)
    assert results[0].seq == 1
    assert isinstance(results[1], SessionClosed)
    assert isinstance(results[2], SessionNotFound)
    assert await seqs(engine, closed_id) == []


async def test_stop_commits_what_was_submitted(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    committer: MessageCommitter = await committer_factory()
    session_id = await new_session(sessionmaker)
    pending = [
        asyncio.create_task(
            committer.submit(NewMessage(session_id=session_id, sender="visitor", text=str(i)))
        )
        for i in range(20)
    ]
    await asyncio.sleep(0)
    await committer.stop()
    assert [(await p).seq for p in pending] == list(range(1, 21))
    assert len(await seqs(engine, session_id)) == 20


async def test_triage_runs_off_the_event_loop(
    committer_factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    calls: list[tuple[str, int]] = []

    def noting_the_thread(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        calls.append((threading.current_thread().name, len(items)))
        return assess_many(items)

    committer: MessageCommitter = await committer_factory(triage=noting_the_thread)
    session_ids = [await new_session(sessionmaker) for _ in range(3)]
    await asyncio.gather(
        *(
            committer.submit(NewMessage(session_id=sid, sender="visitor", text=f"hello {i}"))
            for i, sid in enumerate(session_ids)
        )
    )
    assert calls
    assert all(name.startswith("triage") for name, _ in calls)  # the worker thread, not the loop
    assert sum(count for _, count in calls) == 3


@pytest.mark.parametrize("failure", ["database", "bug"])
async def test_a_failing_offer_in_the_commit_never_costs_a_message(
    failure: str,
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    """The routing step in the commit is an optimisation: when it fails (a statement the
    database refuses, which aborts the transaction, or a plain bug), the batch is stored again
    without it, acked as usual, and the offer is left to the routing worker."""
    calls: list[list[uuid.UUID]] = []

    async def broken(db: AsyncSession, sessions: Collection[uuid.UUID]) -> list[object]:
        calls.append(list(sessions))
        if failure == "database":
            await db.execute(text("SELECT * FROM no_such_table"))
        raise RuntimeError("a bug in routing")

    committer: MessageCommitter = await committer_factory(route=broken)
    session_id = await new_session(sessionmaker)
    stored = await committer.submit(
        NewMessage(session_id=session_id, sender="visitor", text="hello", client_msg_id="a")
    )
    assert stored.seq == 1
    assert not stored.duplicate
    assert await seqs(engine, session_id) == [(1, "a")]
    assert calls == [[session_id]]  # tried once, in the first attempt only
    # Not routable any more (the visitor has spoken): the next message does not try again.
    await committer.submit(
        NewMessage(session_id=session_id, sender="visitor", text="still there?", client_msg_id="b")
    )
    assert await seqs(engine, session_id) == [(1, "a"), (2, "b")]
    assert calls == [[session_id]]


async def test_after_the_lock_a_batch_is_one_statement_and_other_instances_still_hear_it(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    database_url: str,
) -> None:
    """The rows, the sessions' last_seq and the bus NOTIFY go in one statement: a batch is
    the lock and that statement (they were four round trips), and another instance still
    hears every message over LISTEN/NOTIFY, in order, once."""
    async with two_buses(database_url, engine) as (ours, theirs):
        committer: MessageCommitter = await committer_factory(triage=calm, bus=ours)
        sessions = [await new_session(sessionmaker) for _ in range(4)]
        for session_id in sessions:  # first messages: the queue and the context cache
            await committer.submit(NewMessage(session_id=session_id, sender="visitor", text="hi"))
        heard = theirs.subscribe(session_channel(sessions[0]))
        with statements_of(committer) as sent:
            stored = await asyncio.gather(
                *(
                    committer.submit(NewMessage(session_id=s, sender=sender, text="still here"))
                    for s in sessions
                    for sender in ("visitor", "volunteer")
                )
            )
        locks = [q for q in sent if "FOR UPDATE" in q]
        assert locks
        assert len(sent) == 2 * len(locks), sent
        assert all("pg_notify" in q and "INSERT INTO messages" in q for q in sent if q not in locks)
        payloads = [await asyncio.wait_for(heard.get(), 5) for _ in range(2)]
        assert [(p["kind"], p["seq"]) for p in payloads] == [("message", 2), ("message", 3)]
        async with engine.connect() as conn:
            last = await conn.scalars(
                select(ChatSession.last_seq).where(ChatSession.id.in_(sessions))
            )
            assert set(last) == {3}
        assert sorted(r.seq for r in stored if r.session_id == sessions[0]) == [2, 3]


async def test_a_reply_leaves_the_visitors_context_cached(
    committer_factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A volunteer's reply moves last_seq but not the visitor's texts: the next visitor
    message is triaged with the same context, without reading it from the database again
    (it used to, after every reply)."""
    calls, triage = recording(calm)
    committer: MessageCommitter = await committer_factory(triage=triage, context_size=3)
    session_id = await new_session(sessionmaker)
    await committer.submit(NewMessage(session_id=session_id, sender="visitor", text="one"))
    with statements_of(committer) as sent:
        await committer.submit(NewMessage(session_id=session_id, sender="volunteer", text="vol"))
        await committer.submit(NewMessage(session_id=session_id, sender="system", text="note"))
        await committer.submit(NewMessage(session_id=session_id, sender="visitor", text="two"))
    assert not [q for q in sent if "row_number" in q]
    assert calls == [("one", ()), ("two", ("one",))]


async def test_a_first_message_reads_no_context_and_writes_its_session_once(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    """The visitor's first message (the one that joins the queue, and may be offered in the
    same commit) has no earlier visitor texts to read, and its session's first signals and the
    start of its wait are one UPDATE (they were a context query and two UPDATEs)."""

    def first_signals(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        return [
            TriageResult(level=Level.low, score=0.2, signals=("lang:en",), model_version="t")
            for _ in items
        ]

    committer: MessageCommitter = await committer_factory(triage=first_signals)
    session_id = await new_session(sessionmaker)
    with statements_of(committer) as sent:
        stored = await committer.submit(
            NewMessage(session_id=session_id, sender="visitor", text="hello")
        )
    assert stored.seq == 1
    assert not [q for q in sent if "row_number" in q]
    assert len([q for q in sent if q.lstrip().startswith("UPDATE chat_sessions")]) == 1
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    ChatSession.urgency,
                    ChatSession.signals,
                    ChatSession.visitor_spoke_at,
                    ChatSession.waiting_since,
                ).where(ChatSession.id == session_id)
            )
        ).one()
    assert (row.urgency, row.signals) == (1, ["lang:en"])
    assert row.visitor_spoke_at is not None
    assert row.waiting_since == row.visitor_spoke_at  # the wait starts with the first message


async def test_a_batch_rolled_back_for_a_resend_notifies_nobody_twice(
    committer_factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    database_url: str,
) -> None:
    """A resend met by ON CONFLICT rolls the batch back and reruns it: the NOTIFY that rode in
    the rolled-back statement is never heard, so the other instance hears the new message once
    and nothing for the resend."""
    async with two_buses(database_url, engine) as (ours, theirs):
        committer: MessageCommitter = await committer_factory(triage=calm, bus=ours, linger_s=0.05)
        session_id = await new_session(sessionmaker)
        first = NewMessage(session_id=session_id, sender="visitor", text="a", client_msg_id="a")
        # Listening before the first message, and hearing it, so that its NOTIFY (delivered
        # whenever the other connection reads it) cannot be taken for the rerun's.
        heard = theirs.subscribe(session_channel(session_id))
        await committer.submit(first)
        payload = await asyncio.wait_for(heard.get(), 5)
        assert (payload["kind"], payload["seq"]) == ("message", 1)
        new = NewMessage(session_id=session_id, sender="visitor", text="b", client_msg_id="b")
        with statements_of(committer) as sent:
            resent, stored = await asyncio.gather(committer.submit(first), committer.submit(new))
        # One batch, stored twice: rolled back at the resend, then rerun with the check.
        assert len([q for q in sent if "FOR UPDATE" in q]) == 2
        assert (resent.seq, resent.duplicate) == (1, True)
        assert (stored.seq, stored.duplicate) == (2, False)
        payload = await asyncio.wait_for(heard.get(), 5)
        assert (payload["kind"], payload["seq"]) == ("message", 2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(heard.get(), 0.5)
