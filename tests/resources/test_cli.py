"""`beacon resource add | list | remove` as an operator runs it (a child process)."""

from __future__ import annotations

import asyncio
import json
import uuid

from sqlalchemy import select

from app.audit.models import Event
from app.core.db import create_engine, create_sessionmaker, transaction
from tests.ops.test_cli import beacon


async def test_resource_cli_round_trip(database_url: str) -> None:
    title = f"Text line {uuid.uuid4().hex[:6]}"
    added = await asyncio.to_thread(
        beacon,
        "resource",
        "add",
        "--title",
        title,
        "--locale",
        "es",
        "--text",
        "Escríbenos a cualquier hora.",
        "--phone",
        "+34 900 000 000",
        "--topics",
        "soledad,ansiedad",
        "--levels",
        "moderate,high",
        database_url=database_url,
    )
    assert added.returncode == 0, added.stderr
    row = json.loads(added.stdout)
    assert (row["title"], row["locale"], row["levels"]) == (title, "es", ["moderate", "high"])
    assert row["topics"] == ["soledad", "ansiedad"]

    listed = await asyncio.to_thread(
        beacon, "resource", "list", "--locale", "es", database_url=database_url
    )
    assert listed.returncode == 0, listed.stderr
    assert row["id"] in [r["id"] for r in json.loads(listed.stdout)["resources"]]

    refused = await asyncio.to_thread(
        beacon,
        "resource",
        "add",
        "--title",
        "No way to reach it",
        "--locale",
        "en",
        "--text",
        "nothing",
        database_url=database_url,
    )
    assert refused.returncode == 1
    assert json.loads(refused.stderr)["error"] == "validation_error"

    removed = await asyncio.to_thread(
        beacon, "resource", "remove", row["id"], database_url=database_url
    )
    assert removed.returncode == 0, removed.stderr
    again = await asyncio.to_thread(
        beacon, "resource", "remove", row["id"], database_url=database_url
    )
    assert again.returncode == 1
    assert json.loads(again.stderr)["error"] == "resource_not_found"

    engine = create_engine(database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as db:
            actions = (
                await db.scalars(select(Event.action).where(Event.subject_id == row["id"]))
            ).all()
    finally:
        await engine.dispose()
    assert sorted(actions) == ["resource_added", "resource_removed"]
