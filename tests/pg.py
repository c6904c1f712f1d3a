"""Finding a Postgres server for the test run.

Order: ``BEACON_TEST_DATABASE_URL`` if set; else a local server on 127.0.0.1:5432; else a
throwaway cluster started from local binaries (initdb/pg_ctl); else a clear failure.
Every run then creates its own fresh database on that server and drops it afterwards.

Tests that restart Postgres start their own throwaway cluster (:class:`PgCluster`) whatever
the order above found: the shared server is never restarted by the suite.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

LOCAL_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


class NoPostgres(RuntimeError):
    pass


@dataclass
class PgServer:
    admin_url: str  # a database on the server we may connect to for CREATE/DROP DATABASE


@dataclass
class PgCluster(PgServer):
    """A cluster this process started (initdb + pg_ctl), so it may also restart it."""

    pg_ctl: str
    data: Path
    options: str
    log: Path
    prefix: list[str]

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m fast|immediate``: every client connection is cut, then the server
        is back (``-w`` waits until it accepts connections)."""
        self._pg_ctl("-m", mode, "-o", self.options, "-l", str(self.log), "restart")

    def stop(self, mode: str = "fast") -> None:
        """Down until :meth:`start`: connections are refused meanwhile."""
        self._pg_ctl("-m", mode, "stop")

    def start(self) -> None:
        self._pg_ctl("-o", self.options, "-l", str(self.log), "start")

    def _pg_ctl(self, *args: str) -> None:
        # -l on (re)start: without a log file the postmaster would hold our stdout pipe open.
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.data), "-w", *args],
            check=True,
            capture_output=True,
        )


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def can_connect(url: str) -> bool:
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[PgCluster]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise NoPostgres(
            "No Postgres for the tests: set BEACON_TEST_DATABASE_URL, run a server on "
            "127.0.0.1:5432 (user postgres, trust auth), or install the PostgreSQL server "
            "binaries (initdb, pg_ctl) so a throwaway cluster can be started."
        )
    workdir = Path(tempfile.mkdtemp(prefix="beacon-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        # Postgres refuses to run as root; run the throwaway cluster as an unprivileged user.
        shutil.chown(workdir, user="postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = workdir / "data", _free_port()
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = workdir / "log"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-w", "-l", str(log), "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield PgCluster(
            admin_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres",
            pg_ctl=pg_ctl,
            data=data,
            options=opts,
            log=log,
            prefix=prefix,
        )
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


async def create_database(admin_url: str, prefix: str = "beacon_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
