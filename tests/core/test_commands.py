"""One-shot commands bring the embedded default to head, and refuse an unmigrated Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import pg
from tests.conftest import ROOT


def _beacon(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BEACON_DATABASE_URL": database_url, "BEACON_ENV": "test"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_volunteer_add_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    result = _beacon("volunteer", "add", "Ana", database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "Ana"


async def test_commands_refuse_an_unmigrated_postgres(pg_server: pg.PgServer) -> None:
    url = await pg.create_database(pg_server.admin_url, prefix="beacon_unmigrated")
    try:
        for command in (("volunteer", "list"), ("partner", "list"), ("retention", "purge")):
            result = _beacon(*command, database_url=url)
            assert result.returncode == 1, command
            assert "beacon db upgrade" in result.stderr, command
    finally:
        await pg.drop_database(pg_server.admin_url, url)
