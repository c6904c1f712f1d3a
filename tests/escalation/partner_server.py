"""A real hotline-partner HTTP server for tests (uvicorn + a tiny ASGI app on a free port).

It verifies every webhook's signature with the partner's secret, records what arrived and
when, and answers according to a script: ``ok`` (200), ``fail`` (500), ``slow`` (answers 200
after ``slow_s``), ``hang`` (answers after the client has given up). ``stop()`` closes the
port, so attempts get "connection refused"; ``start()`` brings it back on the same port.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from app.escalation.signing import SignatureError, signed_headers, verify

Scope = dict[str, Any]


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    answered: str

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class PartnerServer:
    name: str
    secret: str
    port: int
    phone: str = "+1 555 0100"
    script: deque[str] = field(default_factory=deque)
    default: str = "ok"
    slow_s: float = 0.3
    hang_s: float = 30.0
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/handoff"

    def config_entry(self, **extra: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "secret": self.secret,
            "phone": self.phone,
            "locales": ["*"],
            "levels": ["high", "imminent"],
            **extra,
        }

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            verify(
                self.secret,
                timestamp=headers.get("x-beacon-timestamp"),
                signature=headers.get("x-beacon-signature"),
                body=body,
                tolerance_s=300,
            )
            signature_ok = True
        except SignatureError:
            signature_ok = False
        mode = self.script.popleft() if self.script else self.default
        self.received.append(Received(time.monotonic(), headers, body, signature_ok, mode))
        self.arrived.set()
        status = 401 if not signature_ok else 500 if mode == "fail" else 200
        if mode == "slow":
            await asyncio.sleep(self.slow_s)
        elif mode == "hang":
            await asyncio.sleep(self.hang_s)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"received":true}'})

    async def start(self) -> None:
        self._server = uvicorn.Server(
            uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            await self._task
            self._server = None
            self._task = None

    async def wait_for(self, count: int, within: float) -> list[Received]:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: {len(self.received)} of {count} requests")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                continue
        return self.received

    async def call_back(
        self,
        beacon_url: str,
        handoff_id: str,
        status: str,
        *,
        secret: str | None = None,
        timestamp: float | None = None,
    ) -> httpx.Response:
        body = json.dumps({"status": status, "reference": f"{self.name}-case-1"}).encode()
        headers = {
            "content-type": "application/json",
            **signed_headers(secret or self.secret, body, now=timestamp),
        }
        async with httpx.AsyncClient() as client:
            return await client.post(
                f"{beacon_url}/v1/handoffs/{handoff_id}/status", content=body, headers=headers
            )
