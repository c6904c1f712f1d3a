"""Schemathesis over every REST operation in the published OpenAPI, on a real ``beacon serve``.

Authenticated the way an operator would set it up (`beacon volunteer add --role admin`, who
has every supervisor right and manages the resource library, `beacon partner add`), then again
with no credentials at all. Valid and invalid data (the coverage phase's edge cases and
negative fuzzing) must get a documented status with a body that matches the schema; errors
always have the ``{"error": code, "detail": ...}`` shape, never a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import create_sessionmaker, transaction
from tests.conftest import ROOT, ServerProcess
from tests.fuzz_support import FuzzRun, run_schemathesis
from tests.routing.helpers import add_session

SEED = 20261126
# The checks every answer must pass (the brief's list; response headers are declared too).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)


def _beacon(database_url: str, *args: str) -> dict[str, Any]:
    """Run the CLI as an operator would and return the one JSON object it prints."""
    env = {**os.environ, "BEACON_DATABASE_URL": database_url, "BEACON_ENV": "test"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    issued: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return issued


def _name() -> str:
    return f"fuzz-{uuid.uuid4().hex[:8]}"


PARTNER = {
    "name": "fuzz-line",
    "url": "http://127.0.0.1:9/never",
    "secret": "fuzz-secret-0123456789",
    "phone": "+1 555 0100",
    "locales": ["en"],
    "levels": ["high", "imminent"],
    "fallback": True,
}


def _config(*, auth: dict[str, str] | None, max_examples: int) -> dict[str, Any]:
    config: dict[str, Any] = {
        "seed": SEED,
        "cache": {"enabled": False},
        "generation": {
            "max-examples": max_examples,
            "deterministic": True,
            "database": "none",
            "mode": "all",
        },
        "checks": {
            "enabled": False,
            **{name: {"enabled": True} for name in CHECKS},
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
    if auth is not None:
        config["auth"] = {"openapi": {scheme: {"bearer": token} for scheme, token in auth.items()}}
    return config


def _report(label: str, run: FuzzRun, elapsed: float) -> None:
    print(
        f"schemathesis ({label}): {run.cases} cases, {len(run.statuses)} operations in "
        f"{elapsed:.1f} s"
    )
    for operation, statuses in sorted(run.statuses.items()):
        print(f"  {operation}: {sorted(statuses)}")


def _operations(base_url: str) -> set[str]:
    schema = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    return {f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops}


async def _seed(engine: AsyncEngine, base_url: str, token: str) -> dict[str, list[str]]:
    """Real waiting sessions, a handoff and rescue requests, so that the fuzzer's path ids hit
    rows half the time (random UUIDs only ever reach the 404 branch)."""
    async with transaction(create_sessionmaker(engine)) as db:
        sessions = [str(await add_session(db, urgency=level % 5)) for level in range(8)]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
        handoff = await client.post(f"/v1/dashboard/sessions/{sessions[0]}/handoff")
        assert handoff.status_code == 200, handoff.text
        rescues = []
        for session_id in sessions[1:3]:
            rescue = await client.post(f"/v1/dashboard/sessions/{session_id}/rescue")
            assert rescue.status_code == 200, rescue.text
            rescues.append(rescue.json()["rescue_id"])
        resource = await client.post(
            "/v1/admin/resources",
            json={"title": "Fuzz line", "locale": "en", "phone": "+1 555 0100", "text": "Call."},
        )
        assert resource.status_code == 201, resource.text
    return {
        "session_id": sessions,
        "handoff_id": [handoff.json()["handoff_id"]],
        "rescue_id": rescues,
        "resource_id": [resource.json()["id"]],
    }


def _with_known_ids(config: dict[str, Any], ids: dict[str, list[str]]) -> dict[str, Any]:
    config["dictionaries"] = {name: {"values": values} for name, values in ids.items()}
    config["parameters"] = {
        f"path.{name}": {"dictionary": name, "probability": 0.5} for name in ids
    }
    return config


@pytest.mark.timeout(480)
async def test_every_operation_authenticated(
    database_url: str,
    engine: AsyncEngine,
    server_process_factory: Callable[..., ServerProcess],
    tmp_path: Path,
) -> None:
    # A partner that never answers: callbacks then reach the signature check for real handoffs.
    partners = tmp_path / "partners.json"
    partners.write_text(json.dumps({"partners": [PARTNER]}))
    server = server_process_factory(BEACON_PARTNERS_FILE=str(partners))
    await asyncio.to_thread(server.start)
    supervisor = await asyncio.to_thread(
        _beacon,
        database_url,
        "volunteer",
        "add",
        _name(),
        "--role",
        "admin",
        "--capacity",
        "10",
    )
    partner = await asyncio.to_thread(
        _beacon, database_url, "partner", "add", _name(), "--rate-limit", str(10**9)
    )
    ids = await _seed(engine, server.base_url, supervisor["token"])
    config = _with_known_ids(
        _config(
            auth={"HTTPBearer": supervisor["token"], "PartnerKey": partner["key"]},
            max_examples=40,
        ),
        ids,
    )
    started = time.monotonic()
    run = await asyncio.to_thread(run_schemathesis, server.base_url, config)
    _report("authenticated", run, time.monotonic() - started)
    assert run.problems == [], "\n\n".join(run.problems)
    assert set(run.statuses) == _operations(server.base_url)
    # The seeded ids took the fuzzer past the lookups into the real work.
    # (Which claims win depends on what `next` took first; 409 is a found session too.)
    assert run.statuses["POST /v1/dashboard/sessions/{session_id}/claim"] & {200, 409}
    assert 200 in run.statuses["GET /v1/handoffs/{handoff_id}"]
    assert 401 in run.statuses["POST /v1/handoffs/{handoff_id}/status"]
    assert 201 in run.statuses["POST /v1/admin/resources"]
    assert run.statuses["DELETE /v1/admin/resources/{resource_id}"] & {204, 404}


@pytest.mark.timeout(480)
async def test_every_operation_without_credentials(
    server_process_factory: Callable[..., ServerProcess],
) -> None:
    server = server_process_factory()
    await asyncio.to_thread(server.start)
    started = time.monotonic()
    run = await asyncio.to_thread(
        run_schemathesis, server.base_url, _config(auth=None, max_examples=10)
    )
    _report("no credentials", run, time.monotonic() - started)
    assert run.problems == [], "\n\n".join(run.problems)
