"""Hypothesis against the live ``WS /v1/volunteer`` after auth: any JSON text frame is answered
with ``error`` frames carrying a stable code (one declared on a BeaconError class) or with the
frame's normal reply, never a close, and the socket still answers a ping afterwards.

(tests/routing/test_cli_presence_sqlite.py fuzzes the pure frame parser; this drives the whole
connection: handlers, services and the database behind them.)

Hypothesis draws in a worker thread and fails a draw during which the global ``random`` module
changed (HypothesisDeprecationWarning, then FlakyFailure). A WebSocket keepalive ping takes its
payload from the global ``random`` - an in-process uvicorn's every 20 s, a pinging client's
likewise - so the server runs in its own process and the client does not ping: nothing else in
this process touches ``random`` while Hypothesis runs.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect as connect_async
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

import app.main  # noqa: F401  (imports every router, so every BeaconError subclass exists)
from app.core.db import create_sessionmaker, transaction
from app.core.errors import BeaconError
from tests.conftest import ServerProcess
from tests.routing.conftest import end_live_work
from tests.routing.helpers import add_session, add_volunteer
from tests.routing.wsclient import VolunteerClient

# Client frame types (app/routing/frames.py) and the fields each needs.
REQUIRED: dict[str, tuple[str, ...]] = {
    "auth": ("token",),
    "presence": ("status",),
    "accept": ("session_id",),
    "decline": ("session_id",),
    "next": (),
    "message": ("session_id", "client_msg_id", "text"),
    "release": ("session_id",),
    "transfer": ("session_id",),
    "close": ("session_id", "disposition", "risk_level"),
    "sync": ("session_id", "last_seq"),
    "ping": (),
    "handoff": ("session_id",),
}


def _stable_codes() -> set[str]:
    codes: set[str] = set()
    pending: list[type[BeaconError]] = [BeaconError]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    # "Retry later" is for a database outage; bad input must never be what triggers it.
    codes.discard("temporarily_unavailable")
    return codes


STABLE_CODES = _stable_codes()
NOWHERE = str(uuid.uuid4())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
# Integers at and past the edges of the 32-bit seq column and of int64.
edge_integers = st.sampled_from([-1, 0, 2**31 - 1, 2**31, 2**63, -(2**63) - 1]) | st.integers()


def _frames(session_ids: list[str]) -> st.SearchStrategy[str]:
    ids = st.sampled_from(session_ids) | st.sampled_from(session_ids) | json_values
    # Mostly plausible values (to get past validation into the handlers), sometimes anything.
    fields = {
        "session_id": ids,
        "last_seq": edge_integers | edge_integers | json_values,
        "text": st.text(min_size=0, max_size=50) | json_values,
        "client_msg_id": st.text(max_size=70) | json_values,
        "status": st.sampled_from(["online", "away", "offline"]) | json_values,
        "disposition": st.sampled_from(["resolved", "referred", "x"]) | json_values,
        "risk_level": st.sampled_from(["none", "imminent", "bogus"]) | edge_integers,
        "notes": st.text(max_size=50) | json_values,
        "to_volunteer_id": ids,
        "to_supervisor": st.booleans() | json_values,
        "token": st.text(max_size=20) | json_values,
    }
    # Each type with the fields its model requires (plausible values reach the handlers) and,
    # sometimes, any of the others.
    typed = st.sampled_from(sorted(REQUIRED)).flatmap(
        lambda frame_type: st.fixed_dictionaries(
            {"type": st.just(frame_type), **{name: fields[name] for name in REQUIRED[frame_type]}},
            optional={
                "extra": json_values,
                **{k: v for k, v in fields.items() if k not in REQUIRED[frame_type]},
            },
        )
    )
    untyped = st.fixed_dictionaries({}, optional={**fields, "type": json_values})
    return st.one_of(
        # Weighted towards frames that get past the parser.
        *[typed.map(json.dumps)] * 6,
        untyped.map(json.dumps),
        json_values.map(json.dumps),
        st.text(max_size=60),
    )


def _exchange(ws: ClientConnection, raw: str, probe: int) -> list[dict[str, Any]]:
    """Send ``raw`` then a probe; everything the server said before the probe's answer.

    The probe is a message to a session that does not exist: its error echoes our unique
    ``client_msg_id`` (a ping would not do: the fuzzed frame may itself be a ping)."""
    ws.send(raw)
    marker = f"probe-{probe}"
    ws.send(
        json.dumps(
            {"type": "message", "session_id": NOWHERE, "client_msg_id": marker, "text": "probe"}
        )
    )
    received: list[dict[str, Any]] = []
    while True:
        frame = json.loads(ws.recv(timeout=10))
        if frame.get("client_msg_id") == marker:
            assert frame["type"] == "error", frame
            return received
        received.append(frame)


def _fuzz(ws_url: str, token: str, session_ids: list[str]) -> int:
    ws = connect(f"{ws_url}/v1/volunteer", open_timeout=10, ping_interval=None)
    sent = 0
    with ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"

        @settings(
            max_examples=1000,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(raw=_frames(session_ids))
        def check(raw: str) -> None:
            nonlocal sent
            sent += 1
            try:
                replies = _exchange(ws, raw, sent)
            except ConnectionClosed as exc:
                raise AssertionError(f"closed ({exc.rcvd}) after {raw!r}") from exc
            for frame in replies:
                if frame.get("type") == "error":
                    assert frame["code"] in STABLE_CODES, (raw, frame)
                    assert isinstance(frame.get("detail"), str | list | dict | None), frame

        check()
        # Still alive and serving after everything above.
        ws.send(json.dumps({"type": "ping"}))
        while json.loads(ws.recv(timeout=10))["type"] != "pong":
            pass
    return sent


@pytest.mark.timeout(240)
async def test_random_frames_after_auth_get_stable_errors_and_keep_the_socket(
    engine: AsyncEngine, server_process_factory: Callable[..., ServerProcess]
) -> None:
    async with transaction(create_sessionmaker(engine)) as db:
        await end_live_work(db)
        supervisor, _ = await add_volunteer(db, role="supervisor", online=False)
        # Real sessions (supervisors may read any), so sync/close/message get past the lookup.
        sessions = [str(await add_session(db, urgency=level)) for level in (0, 3, 4)]
    # No throttling: rate limiting has its own tests and would hide everything else here.
    server = server_process_factory(
        BEACON_VOLUNTEER_WS_RATE_LIMIT_PER_S="100000", BEACON_VOLUNTEER_WS_RATE_LIMIT_BURST="100000"
    )
    await asyncio.to_thread(server.start)
    sent = await asyncio.to_thread(
        _fuzz, server.ws_url, supervisor.token, [*sessions, str(uuid.uuid4())]
    )
    assert sent >= 1000


@pytest.mark.parametrize("last_seq", [2**31, 2**63])
async def test_sync_past_the_seq_column_range_is_an_invalid_frame(
    world_factory: Callable[..., Any], last_seq: int
) -> None:
    # Found by the fuzzer above: this reached Postgres as an out-of-range int and came back as
    # `temporarily_unavailable`, leaving the session half-held by the connection.
    world = await world_factory()
    supervisor = await world.volunteer(role="supervisor")
    session_id = str(await world.session(urgency=1))
    client = await VolunteerClient.connect(world.server.ws_url, supervisor.token)
    try:
        await client.send({"type": "sync", "session_id": session_id, "last_seq": last_seq})
        error = await client.expect("error")
        assert error["code"] == "invalid_frame", error
        await client.send({"type": "sync", "session_id": session_id, "last_seq": 2**31 - 1})
        await client.send({"type": "ping"})
        await client.expect("pong")
        assert not [f for f in await client.drain() if f.get("type") == "error"]
    finally:
        await client.close()


async def test_auth_last_seq_past_the_seq_column_range_is_refused_not_a_crash(
    world_factory: Callable[..., Any],
) -> None:
    # The same unbounded seq in the auth frame's resume map crashed the handler while replaying
    # a held session (unhandled exception after `ready`, socket dropped without a close frame);
    # it is now refused like any other malformed auth frame.
    world = await world_factory()
    supervisor = await world.volunteer(role="supervisor")
    session_id = str(await world.session(urgency=1))
    async with httpx.AsyncClient(base_url=world.server.base_url) as http:
        claimed = await http.post(
            f"/v1/dashboard/sessions/{session_id}/claim",
            headers={"Authorization": f"Bearer {supervisor.token}"},
        )
        assert claimed.status_code == 200, claimed.text
    # Held, so the resume map is replayed from the database at once.
    async with connect_async(f"{world.server.ws_url}/v1/volunteer") as ws:
        await ws.send(
            json.dumps({"type": "auth", "token": supervisor.token, "last_seq": {session_id: 2**31}})
        )
        error = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        assert error["type"] == "error"
        assert error["code"] == "invalid_frame"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), timeout=10)
        assert ws.close_code == 1008
