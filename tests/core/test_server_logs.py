"""Everything `beacon serve` prints, under a flood of bad input on both sockets and on HTTP, is
JSON lines with ids only: no plain-text line, no traceback, no message text, no token.

The server runs at DEBUG with the access log on, so that SQLAlchemy's statements and
parameters, websockets' frame dumps and every access line are in play too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.core.db import create_sessionmaker, transaction
from tests.conftest import ServerProcess
from tests.routing.helpers import add_volunteer

CANARY = "glorptastic quibblewhisk"  # message text that must never reach the log
FAKE_TOKEN = "bv_canarytoken0123456789"
ROUNDS = 5


async def _poke(url: str, frames: list[Any]) -> list[Any]:
    """Send frames (str: text; bytes: binary; ("utf8", bytes): a text frame that is not UTF-8)
    and read what comes back until the server closes or goes quiet."""
    replies: list[Any] = []
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with connect(url, open_timeout=10, max_size=None) as ws:
            for frame in frames:
                if isinstance(frame, tuple):
                    await ws.send(frame[1], text=True)
                else:
                    await ws.send(frame)
            while True:  # read it all: a full receive queue would stall the closing handshake
                replies.append(await asyncio.wait_for(ws.recv(), timeout=1.0))
    return replies


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while chunk := sock.recv(4096):
                received += chunk
        return received


async def _flood(server: ServerProcess, volunteer_token: str) -> list[str]:
    """Bad input of every kind; returns the resume tokens the server handed out."""
    chat, staff = f"{server.ws_url}/v1/chat", f"{server.ws_url}/v1/volunteer"
    tokens: list[str] = []
    async with connect(chat, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "hello", "resume_token": None, "last_seq": None}))
        session = json.loads(await ws.recv())
        tokens.append(session["resume_token"])
        await ws.send(json.dumps({"type": "message", "client_msg_id": "c1", "text": CANARY}))
        while json.loads(await ws.recv())["type"] != "ack":
            pass
    resume = json.dumps({"type": "hello", "resume_token": tokens[0], "last_seq": 0})
    hello = json.dumps({"type": "hello", "resume_token": None, "last_seq": None})
    auth = json.dumps({"type": "auth", "token": volunteer_token})
    bad_frames: list[Any] = [
        "{not json " + CANARY,
        json.dumps({"type": "teleport", "text": CANARY}),
        json.dumps({"type": "message", "client_msg_id": "x" * 70, "text": CANARY}),
        json.dumps({"type": "message", "client_msg_id": "big", "text": CANARY * 400}),
        json.dumps({"type": "message", "session_id": str(uuid.uuid4()), "text": CANARY}),
        json.dumps([CANARY]),
    ]
    oversize = json.dumps({"type": "message", "client_msg_id": "huge", "text": CANARY * 2000})
    invalid_utf8 = ("utf8", b'{"type":"message","text":"' + CANARY.encode() + b'\xff\xfe"}')
    for _ in range(ROUNDS):
        await asyncio.gather(
            # Visitor socket: before hello, after hello, after resuming.
            _poke(chat, [*bad_frames]),
            _poke(chat, [hello, *bad_frames, invalid_utf8]),
            _poke(chat, [resume, b"\x00\x01" + CANARY.encode()]),
            _poke(chat, [resume, oversize]),
            _poke(chat, [resume, invalid_utf8]),
            _poke(chat, [json.dumps({"type": "hello", "resume_token": FAKE_TOKEN})]),
            _poke(chat, [hello, *[json.dumps({"type": "ping"})] * 80]),
            # Volunteer socket: before auth, a wrong token, after auth.
            _poke(staff, [b"\x00\x01" + CANARY.encode()]),
            _poke(staff, [invalid_utf8]),
            _poke(staff, [oversize]),
            _poke(staff, [json.dumps({"type": "auth", "token": FAKE_TOKEN})]),
            _poke(staff, [auth, *bad_frames, invalid_utf8]),
            _poke(staff, [auth, b"\x00" + CANARY.encode()]),
            _poke(staff, [auth, oversize]),
            _poke(staff, [auth, *[json.dumps({"type": "ping"})] * 400]),
        )
    canary = CANARY.replace(" ", "-").encode()
    for request in (
        b"GET /" + canary + b" HTTP/1.1\r\nHost: x\r\n" + canary + b"\r\n\r\n",
        b"\xff\xfe " + canary + b"\r\n\r\n",
        b"GET /healthz?token=" + FAKE_TOKEN.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n",
        b"GET /v1/dashboard/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + FAKE_TOKEN.encode()
        + b"\r\nConnection: close\r\n\r\n",
        b"POST /v1/triage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bk_"
        + canary
        + b"\r\nContent-Type: application/json\r\nContent-Length: 30\r\nConnection: close\r\n"
        b"\r\n{not json " + canary + b"}",
    ):
        await asyncio.to_thread(_raw_http, server.port, request)
    return tokens


async def test_everything_the_server_prints_is_json_without_text_or_tokens(
    engine: AsyncEngine, server_process_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    async with transaction(create_sessionmaker(engine)) as db:
        account, _ = await add_volunteer(db, role="supervisor", online=False)
    server = server_process_factory(BEACON_LOG_LEVEL="DEBUG", BEACON_ACCESS_LOG="true")
    server.output = tmp_path / "server.log"
    await asyncio.to_thread(server.start)
    tokens = await _flood(server, account.token)
    await asyncio.to_thread(server.stop)
    output = server.output.read_text("utf-8", errors="replace")
    lines = [line for line in output.splitlines() if line.strip()]
    events: list[dict[str, Any]] = []
    not_json = []
    for line in lines:
        try:
            parsed = json.loads(line)
        except ValueError:
            not_json.append(line)
            continue
        assert isinstance(parsed, dict), line
        events.append(parsed)
    assert not_json == [], f"{len(not_json)} lines are not JSON, e.g. {not_json[:5]}"
    names = {e.get("event") for e in events}
    # The log really covers the flood: startup, the server's own refusals, uvicorn's.
    assert {"startup", "volunteer_connected", "http_access", "shutdown"} <= names, names
    assert "Invalid UTF-8 sequence received from client." in names
    assert "Traceback" not in output
    for secret in (CANARY, "glorptastic", "quibblewhisk", FAKE_TOKEN, account.token, *tokens):
        assert secret not in output, secret
