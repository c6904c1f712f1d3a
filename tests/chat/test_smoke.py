from __future__ import annotations

from collections.abc import Callable
from typing import Any


async def test_hello_message_ack(visitor_factory: Callable[..., Any]) -> None:
    v = await visitor_factory()
    session = await v.hello(locale="en")
    assert session["status"] == "waiting"
    status = await v.recv_until("status")
    assert status["status"] == "waiting"
    ack = await v.say("hello there", "m1")
    assert ack["seq"] == 1
    ack = await v.say("I want to kill myself", "m2")
    assert ack["seq"] == 2
    await v.send({"type": "ping"})
    await v.recv_until("pong")
    print(v.frames)
