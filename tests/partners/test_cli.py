"""`beacon partner add | list | revoke` as an operator runs them, against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import pg
from tests.conftest import ROOT, LiveServer


async def _beacon(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BEACON_ENV": "test",
        "BEACON_DATABASE_URL": database_url,
        "BEACON_LOG_LEVEL": "WARNING",
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "partner", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _single_json_line(stdout: str) -> dict[str, Any]:
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    value: dict[str, Any] = json.loads(lines[0])
    return value


@pytest.mark.timeout(180)
async def test_add_prints_a_working_key_and_revoke_kills_it(
    database_url: str, live_server: LiveServer
) -> None:
    name = f"Acme Crisis App {uuid.uuid4().hex[:6]}"
    added = await _beacon(database_url, "add", name, "--rate-limit", "120")
    assert added.returncode == 0, added.stderr
    issued = _single_json_line(added.stdout)
    assert set(issued) == {
        "id",
        "name",
        "key",
        "prefix",
        "scopes",
        "rate_limit_per_min",
        "created_at",
    }
    assert issued["name"] == name
    assert issued["scopes"] == ["triage"]
    assert issued["rate_limit_per_min"] == 120
    assert issued["key"].startswith(f"bk_{issued['prefix']}_")
    assert "cannot be shown again" in added.stderr

    headers = {"Authorization": f"Bearer {issued['key']}"}
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as client:
        ok = await client.post("/v1/triage", json={"text": "hello"}, headers=headers)
        assert ok.status_code == 200, ok.text

        listed = await _beacon(database_url, "list")
        assert listed.returncode == 0, listed.stderr
        entries = [json.loads(line) for line in listed.stdout.splitlines()]
        mine = [e for e in entries if e["id"] == issued["id"]]
        assert len(mine) == 1
        assert mine[0]["revoked_at"] is None
        assert all("key" not in e and "key_hash" not in e for e in entries)
        assert issued["key"].rsplit("_", 1)[1] not in listed.stdout

        revoked = await _beacon(database_url, "revoke", issued["id"])
        assert revoked.returncode == 0, revoked.stderr
        assert _single_json_line(revoked.stdout)["revoked_at"] is not None

        dead = await client.post("/v1/triage", json={"text": "hello"}, headers=headers)
        assert dead.status_code == 401
        assert dead.json()["error"] == "key_revoked"


@pytest.mark.timeout(120)
async def test_a_key_without_scopes_is_refused(database_url: str, live_server: LiveServer) -> None:
    added = await _beacon(database_url, "add", f"staging-{uuid.uuid4().hex[:6]}", "--scopes", "")
    assert added.returncode == 0, added.stderr
    issued = _single_json_line(added.stdout)
    assert issued["scopes"] == []
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as client:
        response = await client.post(
            "/v1/triage",
            json={"text": "hello"},
            headers={"Authorization": f"Bearer {issued['key']}"},
        )
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


@pytest.mark.timeout(120)
async def test_operator_mistakes_exit_nonzero_with_a_message(database_url: str) -> None:
    unknown = await _beacon(database_url, "revoke", str(uuid.uuid4()))
    assert unknown.returncode == 1
    assert "not_found" in unknown.stderr
    assert unknown.stdout == ""
    not_a_uuid = await _beacon(database_url, "revoke", "42")
    assert not_a_uuid.returncode == 2
    bad_scope = await _beacon(database_url, "add", "x", "--scopes", "triage,admin")
    assert bad_scope.returncode == 2
    assert "admin" in bad_scope.stderr
    bad_limit = await _beacon(database_url, "add", "x", "--rate-limit", "0")
    assert bad_limit.returncode == 2
    blank_name = await _beacon(database_url, "add", "   ")
    assert blank_name.returncode == 1
    assert blank_name.stdout == ""


@pytest.mark.timeout(120)
async def test_an_unmigrated_postgres_database_is_reported(pg_server: pg.PgServer) -> None:
    url = await pg.create_database(pg_server.admin_url, prefix="beacon_cli_empty")
    try:
        result = await _beacon(url, "list")
    finally:
        await pg.drop_database(pg_server.admin_url, url)
    assert result.returncode == 1
    assert "beacon db upgrade" in result.stderr


@pytest.mark.timeout(120)
async def test_embedded_sqlite_is_migrated_on_first_use(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'beacon.db'}"
    added = await _beacon(url, "add", "local dev")
    assert added.returncode == 0, added.stderr
    issued = _single_json_line(added.stdout)
    listed = await _beacon(url, "list")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [issued["id"]]
