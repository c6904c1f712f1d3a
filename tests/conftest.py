"""Shared fixtures: a fresh Postgres database per run, a rolled-back transaction per test, an
httpx client on the ASGI app, and real uvicorn servers for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.core.config import Environment, Settings
from app.core.db import create_engine
from app.core.migrate import upgrade_to_head
from app.core.server import http_protocol
from app.main import create_app
from app.routers.deps import get_db
from app.triage import Engine, load_engine
from tests import pg

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def shared_triage() -> Engine:
    """One triage engine for every app the tests build: the app's own lifespan would load (and
    warm) one per app, about a second each; the model is immutable, so sharing changes nothing."""
    return load_engine()


@pytest.fixture(scope="session")
def triage_engine() -> Engine:
    return shared_triage()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.PgServer]:
    explicit = os.environ.get("BEACON_TEST_DATABASE_URL")
    if explicit:
        yield pg.PgServer(admin_url=explicit)
        return
    if asyncio.run(pg.can_connect(pg.LOCAL_URL)):
        yield pg.PgServer(admin_url=pg.LOCAL_URL)
        return
    try:
        with pg.throwaway_cluster() as server:
            yield server
    except pg.NoPostgres as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
async def database_url(pg_server: pg.PgServer) -> AsyncIterator[str]:
    """A fresh database for this run, built by the Alembic migrations (not create_all)."""
    url = await pg.create_database(pg_server.admin_url)
    await asyncio.to_thread(upgrade_to_head, url)
    yield url
    await pg.drop_database(pg_server.admin_url, url)


@pytest.fixture
async def restartable_database() -> AsyncIterator[tuple[str, pg.PgCluster]]:
    """A migrated database on a cluster of the test's own, for tests that restart Postgres
    (the server the rest of the suite shares is never restarted). Needs initdb/pg_ctl.

    Ask for it before ``live_server_factory``: servers must stop before their cluster does."""
    with pg.throwaway_cluster() as cluster:
        url = await pg.create_database(cluster.admin_url)
        await asyncio.to_thread(upgrade_to_head, url)
        yield url, cluster


@pytest.fixture(scope="session")
def settings_factory(database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": Environment.test,
            "database_url": database_url,
            "db_pool_size": 5,
            "log_json": True,
            # Every test client connects from 127.0.0.1; the per-client session limit has tests
            # of its own (tests/chat/test_drive_by.py), which set it low.
            "session_open_burst": 100_000,
            # This process builds hundreds of apps: freezing each one's objects would keep them
            # all (tests/test_health.py checks the freeze on its own).
            "gc_freeze": False,
            # The live servers here share the test's event loop with its clients, so the loop's
            # busy share would measure the clients too: pacing new connections has tests of its
            # own (tests/core/test_accept_pacing.py, which turn it on); `beacon serve` children
            # run with the default, on.
            "accept_pacing": False,
            # Hundreds of apps, each with a worker process loading its own engine, would cost
            # seconds each: chat triage stays in the test's process (one shared engine), and the
            # worker process has tests of its own (tests/triage/test_process.py, and
            # tests/chat/test_triage_process.py on a live server); `beacon serve` children run
            # with the default, on.
            "chat_triage_process": False,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="session")
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """An outer transaction rolled back after the test: nothing a test writes outlives it."""
    async with engine.connect() as conn:
        trans = await conn.begin()
        try:
            yield conn
        finally:
            if trans.is_active:
                await trans.rollback()


@pytest.fixture
async def db(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session inside the test's transaction; service commits become savepoints."""
    session = AsyncSession(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    try:
        yield session
    finally:
        await session.close()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings, triage=shared_triage)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI, connection: AsyncConnection) -> AsyncIterator[httpx.AsyncClient]:
    """httpx on the ASGI app; each request's transaction nests in the test's, then rolls back."""

    async def test_db() -> AsyncIterator[AsyncSession]:
        session = AsyncSession(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            async with session.begin():
                yield session
        finally:
            await session.close()

    app.dependency_overrides[get_db] = test_db
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://beacon.test") as c:
        yield c
    app.dependency_overrides.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


STOP_WAIT_S = 60.0


def _print_task_stacks() -> None:
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}: {task.get_coro()!r}", file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)


class LiveServer:
    """A real uvicorn serving the app on a free port, in the test's event loop."""

    def __init__(
        self, app: FastAPI, port: int, http: type[asyncio.Protocol] | str = "auto"
    ) -> None:
        self.app = app
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                http=http,
                log_level="warning",
                lifespan="on",
                ws_max_size=app.state.ws_max_size,
                ws_per_message_deflate=False,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT_S)
        except TimeoutError:
            # Once seen in a full run: a stop that never ended, until pytest's timeout. Say
            # where every task of the loop was, then fail now rather than in five minutes.
            _print_task_stacks()
            raise RuntimeError(
                f"the live server did not stop within {STOP_WAIT_S:.0f} s (task stacks above)"
            ) from None

    @property
    def lifespan_state(self) -> dict[str, Any]:
        """What the app's lifespan put in its state: uvicorn gives it to every connection."""
        state: dict[str, Any] = self._server.lifespan.state
        return state


@pytest.fixture
async def live_server_factory(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Any]]:
    """Starts real uvicorn servers on the run's database (committed data: use fresh ids)."""
    servers: list[LiveServer] = []

    async def start(**overrides: Any) -> LiveServer:
        settings = settings_factory(**overrides)
        app = create_app(settings, triage=shared_triage)
        app.state.ws_max_size = settings.max_frame_bytes
        # The HTTP protocol `beacon serve` runs (request-head deadline included).
        server = LiveServer(app, free_port(), http=http_protocol(settings.http_header_timeout_s))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def live_server(live_server_factory: Callable[..., Any]) -> LiveServer:
    server: LiveServer = await live_server_factory()
    return server


class ServerProcess:
    """`beacon serve` in a child process, for tests that must kill the server outright."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        # Where the server's stdout and stderr go (together), for tests that read its log.
        self.output: Path | None = None

    def start(self, timeout: float = 90.0) -> None:
        """Up to ``timeout`` for the server to answer: it loads and warms the triage model
        first, which on 2 cores shared with other work has taken over 30 s."""
        with contextlib.ExitStack() as files:
            out: Any = subprocess.DEVNULL
            if self.output is not None:
                out = files.enter_context(self.output.open("ab"))
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT if self.output is not None else subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise TimeoutError("server did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no shutdown hooks, no flushing
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server_process_factory(database_url: str) -> Iterator[Callable[..., ServerProcess]]:
    procs: list[ServerProcess] = []

    def make(**env_overrides: str) -> ServerProcess:
        env = {
            **os.environ,
            "BEACON_ENV": "test",
            "BEACON_DATABASE_URL": database_url,
            "BEACON_LOG_LEVEL": "WARNING",
            "BEACON_SESSION_OPEN_BURST": "100000",
            **env_overrides,
        }
        proc = ServerProcess(env, free_port())
        procs.append(proc)
        return proc

    yield make
    for proc in procs:
        proc.stop()
