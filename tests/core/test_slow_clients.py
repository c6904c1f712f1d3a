"""Slow-header clients (slowloris) cannot hold connections: a request head must be complete
``BEACON_HTTP_HEADER_TIMEOUT_S`` after the connection opened; dribbling bytes does not extend
it. Requests being served and WebSockets are not cut. Raw sockets, real servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from websockets.asyncio.client import connect

from app.core.server import http_protocol
from app.main import create_app
from tests.conftest import LiveServer, ServerProcess, free_port, shared_triage

HEAD_TIMEOUT_S = 0.5
# Never completed: the blank line that would end the head is not sent. At one byte per 0.1 s,
# dribbling all of it takes over 20 s, far beyond the deadline.
DRIBBLE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 200 + b"\r\n"


async def _dribble(port: int) -> tuple[bool, bytes]:
    """Send DRIBBLE a byte at a time; (whether the server closed the connection first, what
    it answered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        for byte in DRIBBLE:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                chunk = await asyncio.wait_for(reader.read(4096), timeout=0.1)
            except TimeoutError:
                continue
            except ConnectionError:
                return True, received
            if not chunk:
                return True, received
            received += chunk
        return False, received
    finally:
        writer.close()


async def _idle(port: int) -> tuple[bool, bytes]:
    """Connect and send nothing for as long as dribbling would take."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = await asyncio.wait_for(reader.read(4096), timeout=len(DRIBBLE) * 0.1)
    except TimeoutError:
        return False, b""
    finally:
        writer.close()
    return data == b"", data


def _assert_all_cut(results: list[tuple[bool, bytes]]) -> None:
    assert [closed for closed, _ in results] == [True] * len(results)
    for _, answer in results:
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"


@pytest.mark.timeout(120)
async def test_dribbling_clients_are_cut_off_by_beacon_serve(
    server_process_factory: Callable[..., ServerProcess],
) -> None:
    # Was: 20 of 20 such connections were still held after 15 s.
    server = server_process_factory(BEACON_HTTP_HEADER_TIMEOUT_S=str(HEAD_TIMEOUT_S))
    await asyncio.to_thread(server.start)
    results = await asyncio.gather(*(_dribble(server.port) for _ in range(20)))
    _assert_all_cut(results)
    idle = await asyncio.gather(*(_idle(server.port) for _ in range(5)))
    assert idle == [(True, b"")] * 5  # nothing was asked, so no 408: just closed
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get("/healthz")).status_code == 200


@pytest.mark.timeout(120)
async def test_the_h11_protocol_cuts_them_off_too(
    settings_factory: Callable[..., Any],
) -> None:
    # uvicorn falls back to h11 where httptools is not installed.
    settings = settings_factory()
    app = create_app(settings, triage=shared_triage)
    app.state.ws_max_size = settings.max_frame_bytes
    server = LiveServer(app, free_port(), http=http_protocol(HEAD_TIMEOUT_S, base=H11Protocol))
    await server.start()
    try:
        _assert_all_cut(await asyncio.gather(*(_dribble(server.port) for _ in range(5))))
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.get("/healthz")).status_code == 200
    finally:
        await server.stop()


async def test_requests_and_websockets_outlive_the_head_deadline(
    live_server_factory: Callable[..., Any],
) -> None:
    server: LiveServer = await live_server_factory(http_header_timeout_s=HEAD_TIMEOUT_S)
    async with connect(f"{server.ws_url}/v1/chat", open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "hello", "resume_token": None, "last_seq": None}))
        assert json.loads(await ws.recv())["type"] == "session"
        await asyncio.sleep(4 * HEAD_TIMEOUT_S)  # an upgraded connection has no head deadline
        await ws.send(json.dumps({"type": "ping"}))
        while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "pong":
            pass
    # Keep-alive: each request on one connection gets a deadline of its own, from the end of
    # the previous response.
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        for _ in range(5):
            assert (await http.get("/healthz")).status_code == 200
