"""The embedded default: the same visitor socket on SQLite, migrated by the lifespan on start,
with the in-process bus standing in for LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.bus import InProcessBus
from app.chat.committer import NewMessage
from tests.chat.conftest import Visitor
from tests.chat.resilient import ResilientVisitor


@pytest.mark.timeout(120)
async def test_visitor_chat_on_embedded_sqlite(
    live_server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = await live_server_factory(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/beacon.db",
        ws_rate_limit_per_s=1000.0,
        ws_rate_limit_burst=1000,
    )
    state = server.app.state.beacon
    assert isinstance(state.bus, InProcessBus)

    v = await Visitor.connect(server.ws_url)
    session = await v.hello(locale="en")
    status = await v.recv_until("status")
    assert status["queue_position"] is None  # a hello alone is not in the queue
    assert [(await v.say(f"m{i}", f"c{i}"))["seq"] for i in range(3)] == [1, 2, 3]
    positions = [f["queue_position"] for f in v.frames if f["type"] == "status"]
    if positions[-1] is None:
        positions.append((await v.recv_until("status"))["queue_position"])
    assert positions[-1] == 1  # in the queue since the first message
    assert (await v.say("m0", "c0"))["seq"] == 1  # idempotent resend
    await state.committer.submit(
        NewMessage(session_id=uuid.UUID(session["session_id"]), sender="volunteer", text="hi")
    )
    assert (await v.recv_until("message"))["seq"] == 4
    await v.close()

    r = await Visitor.connect(server.ws_url)
    await r.hello(resume_token=session["resume_token"], last_seq=1)
    replay = [await r.recv_until("message") for _ in range(3)]
    assert [f["seq"] for f in replay] == [2, 3, 4]

    # Several visitors at once, dropping and resuming: SQLite's single writer copes.
    visitors = [
        ResilientVisitor(
            name=f"s{i}",
            texts=[f"sqlite {i}/{k}" for k in range(10)],
            url=lambda: server.ws_url,
            rng=random.Random(i),
            drop_probability=0.2,
        )
        for i in range(10)
    ]
    await asyncio.gather(*(x.run() for x in visitors))
    for x in visitors:
        replayed = await x.full_replay()
        assert [f["client_msg_id"] for f in replayed] == [x.cid(k) for k in range(10)]

    await r.send({"type": "message", "client_msg_id": "d", "text": "DELETE"})
    code, seen = await r.closed()
    assert code == 1000
    assert seen[-1]["reason"] == "erased"
