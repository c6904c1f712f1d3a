"""New connections wait their turn while a chat goes on and the loop is busy; the chat does not
(app/core/pacing.py, issue 10). A real uvicorn with Beacon's HTTP protocol, real Postgres and
real ``websockets`` and httpx clients. The pacer under test reads the loop as busy throughout
(its CPU clock is the wall clock), so who waits does not depend on this machine's load; it
takes the place of the app's own in the lifespan state, where every connection finds it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest

from app.core.pacing import AcceptPacer
from app.core.server import PACER_STATE_KEY
from tests.chat.conftest import Visitor
from tests.conftest import LiveServer, ServerProcess

HOLD_S = 2.0


def busy_pacer(server: LiveServer, window_s: float = 5.0) -> AcceptPacer:
    """A pacer on the server's real committer, in place of the app's own."""
    committer = server.app.state.beacon.committer
    pacer = AcceptPacer(
        busy_share=0.5,
        max_hold_s=HOLD_S,
        contended=partial(committer.talked_within, window_s),
        loop_cpu=time.perf_counter,
    )
    server.lifespan_state[PACER_STATE_KEY] = pacer
    return pacer


async def _opened(server: LiveServer | ServerProcess) -> tuple[float, Visitor]:
    """Seconds from connecting to the ``session`` frame, and the visitor."""
    started = time.perf_counter()
    visitor = await Visitor.connect(server.ws_url)
    await visitor.hello()
    return time.perf_counter() - started, visitor


async def test_the_lifespan_hands_its_pacer_to_the_server(
    live_server_factory: Callable[..., Any],
) -> None:
    paced: LiveServer = await live_server_factory(accept_pacing=True)
    pacer = paced.app.state.beacon.accept_pacer
    assert isinstance(pacer, AcceptPacer)
    assert paced.lifespan_state[PACER_STATE_KEY] is pacer
    unpaced: LiveServer = await live_server_factory(accept_pacing=False)
    assert unpaced.app.state.beacon.accept_pacer is None
    assert PACER_STATE_KEY not in unpaced.lifespan_state


async def test_newcomers_wait_while_a_chat_goes_on_and_the_chat_does_not(
    live_server_factory: Callable[..., Any],
) -> None:
    server: LiveServer = await live_server_factory()
    pacer = busy_pacer(server)
    talker = await Visitor.connect(server.ws_url)  # nobody talks yet: not held
    await talker.hello()
    async with httpx.AsyncClient(base_url=server.base_url) as kept_alive:
        assert (await kept_alive.get("/healthz")).status_code == 200
        await talker.say("hi")
        _, first = await _opened(server)  # before the pacer has measured the loop
        await asyncio.sleep(0.05)  # now it has: busy
        assert pacer.held_total == 0

        newcomers = [asyncio.create_task(_opened(server)) for _ in range(3)]
        fresh_http = asyncio.create_task(_fresh_request(server.base_url))
        # Meanwhile the chat under way goes on, and so do requests on a connection that was
        # already open: all of it answered while the newcomers are still held, so none of it
        # waited for the hold (a wall-clock bound here failed on a loaded machine).
        for n in range(5):
            ack = await talker.say(f"still here {n}")
            assert ack["seq"] > 0
        assert (await kept_alive.get("/healthz")).status_code == 200
        assert not any(t.done() for t in newcomers)
        assert pacer.holding == 4

        opened = await asyncio.gather(*newcomers)
        assert [HOLD_S * 0.9 <= wait < HOLD_S + 5 for wait, _ in opened] == [True] * 3
        # Held, then served as usual: the head that arrived meanwhile was read, and their
        # sessions work.
        for _, visitor in opened:
            assert (await visitor.say("hello"))["seq"] == 1
        http_wait, status = await fresh_http
        assert status == 200
        assert http_wait >= HOLD_S * 0.9
        assert pacer.held_total == 4
    assert (await first.say("hello"))["seq"] == 1


async def _fresh_request(base_url: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url) as http:
        status = (await http.get("/healthz")).status_code
    return time.perf_counter() - started, status


async def test_a_held_newcomer_that_gives_up_costs_nothing(
    live_server_factory: Callable[..., Any],
) -> None:
    server: LiveServer = await live_server_factory()
    pacer = busy_pacer(server)
    talker = await Visitor.connect(server.ws_url)
    await talker.hello()
    await talker.say("hi")
    await _opened(server)
    await asyncio.sleep(0.05)
    # A request head sent, then the connection dropped while held; another that sent nothing.
    for head in (b"GET /v1/chat HTTP/1.1\r\nHost: x\r\n", b""):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()
    assert pacer.holding == 2
    wait, visitor = await _opened(server)  # behind them, then served
    assert wait >= HOLD_S * 0.9
    assert (await visitor.say("are you there"))["seq"] == 1
    assert (await talker.say("and me"))["seq"] > 0


async def test_nobody_is_held_once_nobody_talks(
    live_server_factory: Callable[..., Any],
) -> None:
    server: LiveServer = await live_server_factory()
    pacer = busy_pacer(server, window_s=0.3)
    talker = await Visitor.connect(server.ws_url)
    await talker.hello()
    await talker.say("hi")
    await asyncio.sleep(0.4)  # the chat fell quiet: a reconnect storm would not be slowed
    waits = [wait for wait, _ in await asyncio.gather(*(_opened(server) for _ in range(8)))]
    assert pacer.held_total == 0
    assert max(waits) < HOLD_S


@pytest.mark.timeout(180)
async def test_beacon_serve_holds_newcomers_while_a_chat_goes_on(
    server_process_factory: Callable[..., ServerProcess],
) -> None:
    # The real server: uvloop and httptools, where pausing a transport in connection_made holds
    # nothing. A busy share this small counts any loop work as busy (the pacer's own tick is
    # more than 0.1 % of 5 ms), so while the chat goes on every newcomer waits its turn.
    server = server_process_factory(
        BEACON_ACCEPT_BUSY_SHARE="0.001", BEACON_ACCEPT_MAX_HOLD_S=str(HOLD_S)
    )
    await asyncio.to_thread(server.start)
    talker = await Visitor.connect(server.ws_url)
    await talker.hello()
    quiet = [wait for wait, _ in [await _opened(server) for _ in range(3)]]
    assert max(quiet) < HOLD_S / 2  # nobody talking yet: nobody held

    talking = asyncio.create_task(_keep_talking(talker))
    await asyncio.sleep(0.2)
    await _opened(server)  # goes on (the pacer has not measured the loop yet) and starts it
    await asyncio.sleep(0.03)
    opened = await asyncio.gather(*(_opened(server) for _ in range(3)))
    acks = await _stop(talking)
    assert [wait >= HOLD_S * 0.9 for wait, _ in opened] == [True] * 3
    for _, visitor in opened:
        assert (await visitor.say("hello"))["seq"] == 1
    # The chat went on meanwhile, at its own pace.
    assert len(acks) >= 5
    assert max(acks) < HOLD_S / 2
    # Operators see the holds: beacon_connection_hold_seconds counts them and their waits.
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        exposition = (await http.get("/metrics")).text
    held = _sample(exposition, "beacon_connection_hold_seconds_count")
    assert held >= 3
    assert _sample(exposition, "beacon_connection_hold_seconds_sum") >= 3 * HOLD_S * 0.9


def _sample(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


async def _keep_talking(talker: Visitor) -> list[float]:
    """Messages every 50 ms until cancelled; the seconds each took to be acked."""
    acks: list[float] = []
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            started = time.perf_counter()
            await talker.say("still here")
            acks.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return acks


async def _stop(task: asyncio.Task[list[float]]) -> list[float]:
    task.cancel()
    return await task
