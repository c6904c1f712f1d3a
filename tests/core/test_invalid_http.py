"""Bytes that are not HTTP/1.1 (a malformed request line, header or Content-Length) never
reach the app: uvicorn answers them itself, in plain text. Beacon's protocol answers them in
the service's one error shape instead, with a stable code, and closes. Raw sockets, both of
uvicorn's HTTP protocols, real servers (found by schemathesis: ``content-length: G.Zx``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.server import http_protocol
from app.main import create_app
from tests.conftest import LiveServer, free_port, shared_triage

MALFORMED = [
    b"POST /v1/dashboard/next HTTP/1.1\r\nHost: x\r\ncontent-length: G.Zx\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nbad header without colon\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nspace in name: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all (a TLS hello)\r\n\r\n",
    b"GET /he\x00lthz HTTP/1.1\r\nHost: x\r\n\r\n",
]


async def _answer(port: int, request: bytes) -> tuple[bytes, bytes]:
    """(status line and headers, body) of what the server answers before it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=5)  # to EOF: it must close
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize("protocol", [HttpToolsProtocol, H11Protocol], ids=["httptools", "h11"])
async def test_unparseable_requests_get_the_error_shape(
    protocol: type[asyncio.Protocol], settings_factory: Callable[..., Any]
) -> None:
    settings = settings_factory()
    app = create_app(settings, triage=shared_triage)
    app.state.ws_max_size = settings.max_frame_bytes
    server = LiveServer(app, free_port(), http=http_protocol(10.0, base=protocol))
    await server.start()
    try:
        for request in MALFORMED:
            head, body = await _answer(server.port, request)
            assert head.startswith(b"HTTP/1.1 400 "), (request, head)
            assert b"content-type: application/json" in head.lower(), head
            assert json.loads(body) == {
                "error": "invalid_http_request",
                "detail": "the request is not valid HTTP/1.1",
            }
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.get("/healthz")).status_code == 200
    finally:
        await server.stop()
