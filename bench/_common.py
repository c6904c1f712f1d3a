"""What the benchmarks share: a throw-away Postgres database, `beacon` child processes, the bare
uvicorn WebSocket baseline app, process memory and percentiles.

Every bench runs the service as a real `beacon serve` child process (never in the load
generator's event loop), so that the server's CPU and memory are its own and can be measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_ENV = "BEACON_BENCH_ADMIN_URL"
# `beacon ...` without relying on the console script being on PATH.
BEACON = [sys.executable, "-m", "app.cli"]


def default_admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)


def echo_app() -> FastAPI:
    """The baseline: a bare FastAPI WebSocket that sends every text frame straight back."""
    app = FastAPI()

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.send_text(await websocket.receive_text())

    return app


def echo_server_args(port: int, *uvicorn_flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench._common:echo_app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        *uvicorn_flags,
    ]


# -- databases ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the admin URL's server; returns its SQLAlchemy URL."""
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def bench_database_name() -> str:
    return f"beacon_bench_{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    """A new, empty database for one run, dropped afterwards (also on failure)."""
    name = bench_database_name()
    url = await create_database(admin_url, name)
    try:
        yield url
    finally:
        await drop_database(admin_url, name)


# -- beacon and other child processes ----------------------------------------------------------


def beacon_env(database_url: str, **settings: str) -> dict[str, str]:
    """Environment for `beacon` children: quiet logs plus ``BEACON_<NAME>`` for each setting.

    Every bench client connects from 127.0.0.1, so the per-client limit on new sessions is
    lifted unless a bench sets it (bench/drive_by_flood.py measures it)."""
    env = {
        **os.environ,
        "BEACON_DATABASE_URL": database_url,
        "BEACON_ENV": "test",
        "BEACON_LOG_LEVEL": "WARNING",
        "BEACON_SESSION_OPEN_BURST": "1000000",
    }
    env.update({f"BEACON_{name.upper()}": value for name, value in settings.items()})
    return env


def beacon(args: Sequence[str], env: dict[str, str]) -> str:
    """Run one `beacon` command to completion; returns its stdout."""
    done = subprocess.run(
        [*BEACON, *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    return done.stdout


def add_volunteer(
    env: dict[str, str], name: str, *, capacity: int = 3, languages: str = "en"
) -> dict[str, str]:
    """`beacon volunteer add`; returns its JSON (id, token, ...)."""
    out = beacon(
        ["volunteer", "add", name, "--capacity", str(capacity), "--languages", languages], env
    )
    account: dict[str, str] = json.loads(out)
    return account


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file soft limit towards ``wanted`` (capped by the hard limit);
    children inherit it. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@contextlib.contextmanager
def child(
    args: list[str], env: dict[str, str], port: int, *, ready_path: str = "/"
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until it answers HTTP on ``port``, stop it afterwards."""
    proc = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # A server loads its triage model (and warms it) before it answers: on 2 cores shared
        # with other work that has taken over 30 s.
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1)
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{args} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not answer on port {port} within 90 s")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_args(port: int) -> list[str]:
    return [*BEACON, "serve", "--port", str(port)]


# -- measuring ---------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size of a process (VmRSS from /proc), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc/<pid>/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; utime is field 14
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def metric_sample(metrics_text: str, name: str) -> float | None:
    """One unlabelled sample from a Prometheus text page."""
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def summary_line(summary: dict[str, object]) -> str:
    """The machine-readable last line of a bench (read by `python -m bench`)."""
    return "SUMMARY " + json.dumps(summary, separators=(",", ":"))
