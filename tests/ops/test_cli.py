"""`beacon retention purge [--dry-run]` as an operator runs it (a child process)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from app.audit.models import Event
from app.core.db import create_engine, create_sessionmaker, transaction, utcnow
from tests import pg
from tests.conftest import ROOT
from tests.ops import builders
from tests.ops.builders import assert_purged_as_expected


def beacon(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BEACON_ENV": "test",
        "BEACON_DATABASE_URL": database_url,
        "BEACON_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_purge_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'beacon.db'}"
    # On the embedded default the command brings the file to head itself, as `serve` does.
    first = await asyncio.to_thread(beacon, "retention", "purge", "--dry-run", database_url=url)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["messages"] == 0
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with transaction(sessionmaker) as db:
            fx = await builders.build(db, utcnow())

        dry = await asyncio.to_thread(beacon, "retention", "purge", "--dry-run", database_url=url)
        assert dry.returncode == 0, dry.stderr
        counted = json.loads(dry.stdout)
        assert counted["dry_run"] is True
        assert counted["retention_days"] == 90
        assert (counted["messages"], counted["notes"], counted["triage_requests"]) == (4, 1, 2)

        done = await asyncio.to_thread(beacon, "retention", "purge", database_url=url)
        assert done.returncode == 0, done.stderr
        purged = json.loads(done.stdout)
        assert purged["dry_run"] is False
        assert (purged["messages"], purged["notes"], purged["triage_requests"]) == (4, 1, 2)
        async with sessionmaker() as db:
            await assert_purged_as_expected(db, fx)
            trail = (
                await db.scalars(select(Event).where(Event.action == "retention_purged"))
            ).all()
        # Dry runs change nothing and leave no trace; the real run leaves one event.
        assert [(e.actor_id, e.details["messages"]) for e in trail] == [("cli", 4)]
    finally:
        await engine.dispose()


async def test_retention_days_comes_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'beacon.db'}"
    env_days = {**os.environ, "BEACON_RETENTION_DAYS": "7"}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "retention", "purge", "--dry-run"],
        env={**env_days, "BEACON_DATABASE_URL": url, "BEACON_ENV": "test"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["retention_days"] == 7


async def test_refuses_a_database_not_at_head(pg_server: pg.PgServer) -> None:
    url = await pg.create_database(pg_server.admin_url, prefix="beacon_ops_empty")
    try:
        result = await asyncio.to_thread(beacon, "retention", "purge", database_url=url)
    finally:
        await pg.drop_database(pg_server.admin_url, url)
    assert result.returncode == 1
    assert "beacon db upgrade" in result.stderr
    assert result.stdout == ""


def test_usage_and_bad_arguments(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'beacon.db'}"
    usage = beacon("--help", database_url=url)
    assert usage.returncode == 0
    assert "retention purge [--dry-run]" in usage.stdout
    missing = beacon("retention", database_url=url)
    assert missing.returncode == 2
    assert "purge" in missing.stderr
    unknown = beacon("retention", "purge", "--days", "3", database_url=url)
    assert unknown.returncode == 2
