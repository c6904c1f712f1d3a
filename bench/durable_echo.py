"""The durable echo: the ceiling for any durable chat on this machine.

A bare uvicorn WebSocket endpoint that stores every text frame in Postgres (asyncpg, one small
table, ``synchronous_commit`` as the server is configured, as for Beacon) and echoes it only once
the commit that holds it has returned. Commits are grouped: one writer task commits whatever
frames arrived while its previous commit was in flight, in one round trip (``unnest``), so the
throughput it reaches is what group commit on this Postgres and these cores allow, with none of
Beacon's work (validation, triage, routing, bus, audit) on top. bench/chat_e2e.py runs it beside
the plain echo and reports Beacon's saturation as a ratio to both.

    BEACON_BENCH_DURABLE_ECHO_DSN=postgresql://... uvicorn --factory bench.durable_echo:app

``GET /stats`` answers the frames stored and the commits made so far (mean frames per commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from bench._common import echo_server_args

DSN_ENV = "BEACON_BENCH_DURABLE_ECHO_DSN"
TABLE = """
CREATE TABLE IF NOT EXISTS echo_frame (
    id bigserial PRIMARY KEY,
    body text NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = "INSERT INTO echo_frame (body) SELECT * FROM unnest($1::text[])"


@dataclass
class GroupCommitter:
    """Frames waiting for a commit, and the one task that commits them in groups."""

    conn: asyncpg.Connection
    pending: asyncio.Queue[tuple[str, asyncio.Future[None]]] = field(default_factory=asyncio.Queue)
    frames: int = 0
    commits: int = 0

    async def store(self, body: str) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.pending.put((body, done))
        await done

    async def run(self) -> None:
        while True:
            group = [await self.pending.get()]
            while not self.pending.empty():  # everything that came during the last commit
                group.append(self.pending.get_nowait())
            try:
                async with self.conn.transaction():
                    await self.conn.execute(INSERT, [body for body, _ in group])
            except Exception as exc:  # the senders learn of it; the writer goes on
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            self.frames += len(group)
            self.commits += 1
            for _, done in group:
                if not done.done():
                    done.set_result(None)


def app() -> FastAPI:
    """The uvicorn factory; the connection and the writer live in the lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        conn = await asyncpg.connect(os.environ[DSN_ENV])
        await conn.execute(TABLE)
        committer = GroupCommitter(conn)
        writer = asyncio.create_task(committer.run())
        application.state.committer = committer
        try:
            yield
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await conn.close()

    application = FastAPI(lifespan=lifespan)

    @application.get("/stats")
    async def stats() -> dict[str, int]:
        committer: GroupCommitter = application.state.committer
        return {"frames": committer.frames, "commits": committer.commits}

    @application.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        committer: GroupCommitter = application.state.committer
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                body = await websocket.receive_text()
                await committer.store(body)
                await websocket.send_text(body)

    return application


def server_args(port: int) -> list[str]:
    """The plain echo's uvicorn command line with this app instead."""
    args = echo_server_args(port)
    args[args.index("bench._common:echo_app")] = "bench.durable_echo:app"
    return args
