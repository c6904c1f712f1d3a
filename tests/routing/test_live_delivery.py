"""Live delivery to a volunteer's socket: what this process's committer just stored is sent
from memory, not read back once per message and socket; what a mute withholds is remembered
until the mute or the urgency changes; a message another instance stored is still read from the
database. Real uvicorn servers, real `websockets` clients, Postgres."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.routing.conftest import FAST, World
from tests.routing.wsclient import VisitorClient, VolunteerClient, about


@contextmanager
def message_reads(engine: AsyncEngine) -> Iterator[list[str]]:
    """The live-delivery reads (messages after a seq) this engine runs meanwhile."""
    reads: list[str] = []

    def seen(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if "FROM messages" in statement and "messages.seq >" in statement:
            reads.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield reads
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)


async def test_live_messages_reach_the_volunteer_without_a_read_each(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory()
    visitor, volunteer = await world.held_chat(capacity=6)
    sid = visitor.session_id
    with message_reads(world.state.engine) as reads:
        for i in range(2, 8):
            ack = await visitor.say(f"still here {i}", f"v-{i}")
            got = await volunteer.expect("message", about(sid, seq=ack["seq"]))
            assert got["text"] == f"still here {i}"
            assert got["level"] is not None  # the triage the dashboard shows came along
            assert got["signals"] is not None
    # Before, each of the six was read back from the database for the volunteer's socket.
    assert len(reads) <= 1, reads


async def test_what_a_mute_withholds_is_remembered_until_it_changes(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory()
    visitor, volunteer = await world.held_chat(capacity=6)
    sid = visitor.session_id
    supervisor = await world.volunteer(role="supervisor", capacity=0, name="S")
    headers = {"Authorization": f"Bearer {supervisor.token}"}
    async with httpx.AsyncClient(base_url=world.server.base_url, headers=headers) as http:
        made = await http.post(
            f"/v1/dashboard/sessions/{sid}/mute", json={"duration_s": 600, "reason": "abuse"}
        )
        assert made.status_code == 200, made.text
        await volunteer.expect("session", about(sid, muted=True))
        # The first muted line reads the mute; the next ones are withheld from what is known.
        for i in range(1, 4):
            ack = await visitor.say(f"you are useless {i}", f"m-{i}")
            shielded = await volunteer.expect("message", about(sid, seq=ack["seq"]))
            assert (shielded["text"], shielded["muted"]) == (None, True)
        lifted = await http.delete(f"/v1/dashboard/sessions/{sid}/mute")
        assert lifted.json()["status"] == "lifted"
    await volunteer.expect("session", about(sid, muted=False))
    for i in range(1, 3):
        ack = await visitor.say(f"sorry {i}", f"s-{i}")
        shown = await volunteer.expect("message", about(sid, seq=ack["seq"]))
        assert shown["text"] == f"sorry {i}"
        assert "muted" not in shown or shown["muted"] is None


async def test_a_message_another_instance_stored_is_read_from_the_database(
    world_factory: Callable[..., Any], live_server_factory: Callable[..., Any]
) -> None:
    world: World = await world_factory()
    other = await live_server_factory(**FAST)  # the visitor's instance, same database
    token = (await world.volunteer(capacity=4, name="V")).token
    volunteer = await VolunteerClient.connect(world.server.ws_url, token)
    visitor = await VisitorClient.open(other.ws_url)
    await visitor.say("hello", "v-1")
    sid = visitor.session_id
    await volunteer.expect("offer", about(sid))
    await volunteer.send({"type": "accept", "session_id": sid})
    await volunteer.expect("message", about(sid, seq=1))
    with message_reads(world.state.engine) as reads:
        for i in range(2, 6):
            ack = await visitor.say(f"line {i}", f"v-{i}")
            got = await volunteer.expect("message", about(sid, seq=ack["seq"]))
            assert got["text"] == f"line {i}"
    # Stored by the other instance: nothing of it is in this process's memory.
    assert len(reads) >= 4
