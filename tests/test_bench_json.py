"""The benches' own plumbing at tiny sizes: the durable echo stores before it echoes, and
`python -m bench --json` writes every figure of issue 13's table. No timing is asserted."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url
from websockets.asyncio.client import connect

from bench import durable_echo
from bench.__main__ import FIGURES
from bench._common import (
    ROOT,
    asyncpg_dsn,
    bench_database_name,
    child,
    create_database,
    drop_database,
    free_port,
)
from tests import pg


async def _talk(port: int, url: str) -> None:
    """Two sockets, five frames each: every echo comes back, already committed."""
    async with (
        connect(f"ws://127.0.0.1:{port}/echo") as a,
        connect(f"ws://127.0.0.1:{port}/echo") as b,
    ):
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            for i in range(5):
                await a.send(f"a{i}")
                await b.send(f"b{i}")
                assert await a.recv() == f"a{i}"
                assert await b.recv() == f"b{i}"
                stored = await conn.fetchval(  # from another connection: committed
                    "SELECT count(*) FROM echo_frame WHERE body = ANY($1::text[])",
                    [f"a{i}", f"b{i}"],
                )
                assert stored == 2
        finally:
            await conn.close()


def test_durable_echo_commits_each_frame_before_echoing_it(pg_server: pg.PgServer) -> None:
    url = asyncio.run(create_database(pg_server.admin_url, bench_database_name()))
    try:
        port = free_port()
        env = {**os.environ, durable_echo.DSN_ENV: asyncpg_dsn(url)}
        with child(durable_echo.server_args(port), env, port):
            asyncio.run(_talk(port, url))
            stats = httpx.get(f"http://127.0.0.1:{port}/stats").json()
    finally:
        asyncio.run(drop_database(pg_server.admin_url, make_url(url).database or ""))
    assert stats["frames"] == 10
    assert 1 <= stats["commits"] <= 10


def test_bench_json_has_every_figure(pg_server: pg.PgServer, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--tiny",
            "--only",
            "reconnect_storm",
            "--json",
            str(out),
            "--admin-url",
            pg_server.admin_url,
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    report = json.loads(out.read_text())
    figures = report["figures"]
    assert set(FIGURES) <= set(figures)
    assert report["benches"]["reconnect_storm"]["status"] == "ok"
    for name, (bench, _, _) in FIGURES.items():
        value = figures[name]
        if bench == "reconnect_storm":
            assert isinstance(value, float), name
        else:  # that bench did not run: no figure, rather than a made-up one
            assert value is None, name
    assert figures["reconnect_storm_resumed"] == 20.0
    assert report["benches"]["reconnect_storm"]["summary"]["resume_failures"] == 0
