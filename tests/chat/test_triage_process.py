"""A live server triaging chat in its worker process: the conversation's levels are the
in-process engine's, and the worker goes with the server."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.triage import Level
from tests.chat.conftest import Visitor, stored_messages
from tests.conftest import LiveServer, shared_triage

CONVERSATION = [
    "hi, rough day",
    "the pills are in my hand",
    "jk lol",
    "ya me tomé todas las pastillas",
]


def _workers() -> set[int]:
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


async def test_chat_is_triaged_in_the_worker_as_in_this_process(
    live_server_factory: Callable[..., Any], engine: AsyncEngine
) -> None:
    before = _workers()
    server: LiveServer = await live_server_factory(
        chat_triage_process=True, ws_rate_limit_per_s=1000.0, ws_rate_limit_burst=1000
    )
    assert _workers() - before, "no worker process started with the server"
    visitor = await Visitor.connect(server.ws_url)
    try:
        session = await visitor.hello()
        for number, text in enumerate(CONVERSATION):
            await visitor.say(text, f"m{number}")
    finally:
        await visitor.close()
    stored = [
        m for m in await stored_messages(engine, session["session_id"]) if m.sender == "visitor"
    ]
    assert [m.text for m in stored] == CONVERSATION
    expected = shared_triage().assess_many(
        [(text, tuple(CONVERSATION[:index])) for index, text in enumerate(CONVERSATION)]
    )
    assert [m.level for m in stored] == [int(result.level) for result in expected]
    assert stored[2].level >= Level.high  # "jk" after the pills keeps it urgent
    await server.stop()
    assert not (_workers() - before), "the worker outlived its server"
