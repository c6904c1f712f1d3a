"""What opening and resuming a session costs the database (issue 13): one transaction, one
commit, and nothing read that the hello already carried. Observed with SQLAlchemy events on a
real server's engine, over real Postgres and a real ``websockets`` client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from app.chat.models import ChatSession
from app.core.db import transaction
from tests.chat.conftest import Visitor
from tests.conftest import LiveServer

VisitorFactory = Callable[..., Any]


@dataclass
class Transaction:
    statements: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    committed: bool = False

    def mentions(self, session_id: uuid.UUID) -> bool:
        forms = (session_id, str(session_id))
        return any(v in forms for _, params in self.statements for v in params)


@dataclass
class Recorder:
    """Every transaction on the server's engine while recording, with its statements."""

    open: dict[int, Transaction] = field(default_factory=dict)
    done: list[Transaction] = field(default_factory=list)

    def of(self, session_id: uuid.UUID) -> list[Transaction]:
        """The transactions that touched the session by id, the heartbeat's aside (a
        background UPDATE of every local session, not part of any open)."""
        return [
            t
            for t in self.done
            if t.mentions(session_id) and not any("SKIP LOCKED" in s for s, _ in t.statements)
        ]


def _flat(params: Any) -> tuple[Any, ...]:
    if isinstance(params, dict):
        return tuple(params.values())
    if isinstance(params, list | tuple):
        return tuple(v for p in params for v in _flat(p)) if params else ()
    return (params,)


@contextmanager
def recording(server: LiveServer) -> Iterator[Recorder]:
    engine = server.app.state.beacon.engine.sync_engine
    recorder = Recorder()

    def current(conn: Connection) -> Transaction:
        return recorder.open.setdefault(id(conn.connection.dbapi_connection), Transaction())

    def on_execute(conn: Connection, _c: Any, statement: str, params: Any, *_: Any) -> None:
        current(conn).statements.append((statement, _flat(params)))

    def on_end(committed: bool) -> Callable[[Connection], None]:
        def end(conn: Connection) -> None:
            key = id(conn.connection.dbapi_connection)
            transaction = recorder.open.pop(key, None)
            if transaction is not None and transaction.statements:
                transaction.committed = committed
                recorder.done.append(transaction)

        return end

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", on_execute),
        ("commit", on_end(True)),
        ("rollback", on_end(False)),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield recorder
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


@dataclass
class Opened:
    visitor: Visitor
    session_id: uuid.UUID
    token: str


async def _open(make: VisitorFactory, server: LiveServer) -> Opened:
    visitor: Visitor = await make(server)
    session = await visitor.hello()
    await visitor.recv_until("status")
    return Opened(visitor, uuid.UUID(session["session_id"]), session["resume_token"])


async def _quiet_server(live_server_factory: Callable[..., Any]) -> LiveServer:
    # A heartbeat once a minute (min(grace, silent ttl) / 4): none lands inside a test. No
    # retention worker: its first pass comes at a random moment of its first 5 minutes.
    server: LiveServer = await live_server_factory(
        ws_rate_limit_per_s=1000.0,
        ws_rate_limit_burst=1000,
        silent_session_ttl_s=240.0,
        retention_interval_s=0.0,
    )
    return server


async def test_hello_opens_a_session_in_one_commit(
    live_server_factory: Callable[..., Any], visitor_factory: VisitorFactory
) -> None:
    server = await _quiet_server(live_server_factory)
    with recording(server) as recorder:
        opened = await _open(visitor_factory, server)
        await asyncio.sleep(0.2)  # anything the open set off afterwards is recorded too
    touched = recorder.of(opened.session_id)
    assert len(touched) == 1, [t.statements for t in touched]
    (only,) = touched
    assert only.committed
    assert sorted(" ".join(s.split()[:3]) for s, _ in only.statements) == [
        "INSERT INTO chat_sessions",
        "INSERT INTO events",  # its audit record
    ]


async def test_resume_at_last_seq_is_one_update_and_reads_nothing_again(
    live_server_factory: Callable[..., Any], visitor_factory: VisitorFactory
) -> None:
    server = await _quiet_server(live_server_factory)
    first = await _open(visitor_factory, server)
    ack = await first.visitor.say("hi, is anyone there?")
    await first.visitor.told_position()  # in the queue, and in this instance's snapshot
    await first.visitor.close()
    await asyncio.sleep(0.3)  # its disconnect is recorded before the resume is watched

    with recording(server) as recorder:
        again: Visitor = await visitor_factory(server)
        await again.send({"type": "hello", "resume_token": first.token, "last_seq": ack["seq"]})
        session = await again.recv_until("session")
        status = await again.recv_until("status")
        await asyncio.sleep(0.2)
    assert session["session_id"] == str(first.session_id)
    assert status["queue_position"] is not None
    assert not any(f["type"] == "message" for f in again.frames)  # nothing to replay
    (only,) = [t for t in recorder.done if any("resume_token_hash" in s for s, _ in t.statements)]
    assert only.committed
    assert [s.split()[:2] for s, _ in only.statements] == [["UPDATE", "chat_sessions"]]
    assert recorder.of(first.session_id) == [], "the session was read again after the resume"


async def test_resume_behind_replays_and_a_message_stored_meanwhile_is_heard(
    live_server_factory: Callable[..., Any], visitor_factory: VisitorFactory
) -> None:
    """The replay read is the only read, and the bus subscription made inside the open's
    transaction hears what commits right after it."""
    server = await _quiet_server(live_server_factory)
    first = await _open(visitor_factory, server)
    await first.visitor.say("one")
    await first.visitor.say("two")
    await first.visitor.close()
    await asyncio.sleep(0.3)

    again: Visitor = await visitor_factory(server)
    await again.send({"type": "hello", "resume_token": first.token, "last_seq": 1})
    await again.recv_until("session")
    replayed = await again.recv_until("message")
    assert (replayed["seq"], replayed["text"]) == (2, "two")
    await again.recv_until("status")
    third = await again.say("three")
    assert third["seq"] == 3
    other: Visitor = await visitor_factory(server)
    await other.send({"type": "hello", "resume_token": first.token, "last_seq": 3})
    await other.recv_until("status")
    await again.say("four")
    heard = await other.recv_until("message")
    assert (heard["seq"], heard["text"]) == (4, "four")


async def test_hellos_arriving_together_share_commits_and_each_gets_its_own_answer(
    live_server_factory: Callable[..., Any], visitor_factory: VisitorFactory
) -> None:
    """Group commit of hellos (app/chat/opener.py): a burst of new sessions and of resumes,
    one of them with a token that resumes nothing, in a few commits; every answer is right."""
    server = await _quiet_server(live_server_factory)
    opener = server.app.state.beacon.opener
    n = 40
    before = opener.commits
    opened = await asyncio.gather(*(_open(visitor_factory, server) for _ in range(n)))
    assert len({o.session_id for o in opened}) == n
    assert len({o.token for o in opened}) == n
    assert opener.commits - before < n
    for o in opened:
        await o.visitor.close()
    await asyncio.sleep(0.3)

    async def resume(token: str) -> tuple[int | None, list[dict[str, Any]]]:
        visitor: Visitor = await visitor_factory(server)
        await visitor.send({"type": "hello", "resume_token": token, "last_seq": 0})
        try:
            await visitor.recv_until("status")
        except Exception:
            code, _ = await visitor.closed()
            return code, visitor.frames
        return None, visitor.frames

    before = opener.commits
    results = await asyncio.gather(*(resume(o.token) for o in opened), resume("not-a-token"))
    assert opener.commits - before < n + 1
    *good, bad = results
    for o, (code, frames) in zip(opened, good, strict=True):
        assert code is None
        assert frames[0]["type"] == "session"
        assert frames[0]["session_id"] == str(o.session_id)
    code, frames = bad
    assert code == 1008
    assert [f["code"] for f in frames if f["type"] == "error"] == ["invalid_resume_token"]


async def test_sockets_closing_together_share_commits_and_each_is_recorded(
    live_server_factory: Callable[..., Any], visitor_factory: VisitorFactory
) -> None:
    """Leaving is group-committed like opening (a flood of drive-bys dropping their sockets was
    one commit each): fewer commits than sockets, and every session's visitor is marked gone
    with the time the grace period starts from."""
    server = await _quiet_server(live_server_factory)
    opener = server.app.state.beacon.opener
    n = 40
    opened = await asyncio.gather(*(_open(visitor_factory, server) for _ in range(n)))
    ids = [o.session_id for o in opened]
    before = opener.commits
    with recording(server) as recorder:
        await asyncio.gather(*(o.visitor.close() for o in opened))
        gone: list[Any] = []
        for _ in range(100):
            async with transaction(server.app.state.beacon.sessionmaker) as db:
                gone = list(
                    (
                        await db.execute(
                            select(
                                ChatSession.visitor_connected, ChatSession.visitor_seen_at
                            ).where(ChatSession.id.in_(ids))
                        )
                    ).all()
                )
            if all(not connected for connected, _ in gone):
                break
            await asyncio.sleep(0.05)
    assert len(gone) == n
    assert [connected for connected, _ in gone] == [False] * n
    assert all(seen is not None for _, seen in gone)
    assert 1 <= opener.commits - before < n
    leaving = [
        t
        for t in recorder.done
        if t.committed
        and any(
            "UPDATE chat_sessions" in s and "visitor_connected" in s  # after its locking CTE
            for s, _ in t.statements
        )
    ]
    assert 1 <= len(leaving) < n
