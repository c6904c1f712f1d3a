"""`beacon volunteer` CLI, presence timeouts, frame fuzzing, and the SQLite equivalent."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker, transaction, utcnow
from app.core.errors import BeaconError, Unauthorized
from app.core.migrate import upgrade_to_head
from app.routing import accounts, assignments, frames, presence
from app.routing.models import Volunteer
from tests.conftest import ROOT
from tests.routing.helpers import SLOTS, add_session, add_volunteer


def _beacon(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BEACON_DATABASE_URL": database_url, "BEACON_ENV": "test"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "volunteer", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_add_prints_one_json_object_and_revoke_works(
    database_url: str, db: AsyncSession
) -> None:
    result = await asyncio.to_thread(
        _beacon,
        database_url,
        "add",
        "Sam",
        "--role",
        "supervisor",
        "--languages",
        "en,es-MX",
        "--capacity",
        "4",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    issued = json.loads(lines[0])
    assert issued["role"] == "supervisor"
    assert issued["languages"] == ["en", "es"]
    assert issued["capacity"] == 4
    token = issued["token"]
    assert len(token) >= 3 + 32  # prefix + >= 128 bits as hex
    principal = await accounts.authenticate(db, token)
    assert str(principal.id) == issued["id"]
    stored = await db.scalar(select(Volunteer.token_hash).where(Volunteer.id == principal.id))
    assert stored is not None
    assert token not in stored  # only the digest is kept

    revoked = await asyncio.to_thread(_beacon, database_url, "revoke", issued["id"])
    assert revoked.returncode == 0, revoked.stderr
    db.expire_all()
    with pytest.raises(Unauthorized):
        await accounts.authenticate(db, token)
    bad = await asyncio.to_thread(_beacon, database_url, "add", "X", "--role", "partner")
    assert bad.returncode != 0


async def test_missed_heartbeats_go_offline_then_chats_requeue(
    db: AsyncSession, settings_factory: Callable[..., Settings]
) -> None:
    config = settings_factory(volunteer_heartbeat_timeout_s=30, volunteer_grace_s=60)
    session_id = await add_session(db, urgency=3)
    _, me = await add_volunteer(db)
    await assignments.claim(db, me, session_id, high_urgency_slots=SLOTS)
    now = utcnow()
    await presence.heartbeat(db, me.id, "online", now=now - timedelta(seconds=31))
    await presence.sweep(db, config, now=now)
    volunteer = await db.get(Volunteer, me.id, populate_existing=True)
    assert volunteer is not None
    assert volunteer.presence == "offline"
    # Inside the grace the chat stays with them...
    await presence.sweep(db, config, now=now + timedelta(seconds=30))
    held = await assignments.require_access(db, me, session_id, write=True)
    assert held.id == session_id
    # ...after it, back to the queue.
    notices = await presence.sweep(db, config, now=now + timedelta(seconds=61))
    assert any(n.visitor_status == (session_id, "waiting") for n in notices)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.dictionaries(
            st.sampled_from(["type", "session_id", "text", "client_msg_id", "status", "token"]),
            st.one_of(
                st.none(),
                st.integers(),
                st.text(max_size=40),
                st.sampled_from(["accept", "message", "close", "presence", "auth", "next"]),
            ),
        ).map(json.dumps),
    )
)
def test_any_text_frame_parses_or_fails_with_a_stable_code(raw: str) -> None:
    code = "parsed"
    try:
        frames.parse_client_frame(raw)
    except BeaconError as exc:
        code = exc.code
    assert code in {"parsed", "invalid_json", "invalid_frame", "unknown_frame_type"}


async def test_sqlite_claims_and_capacity(tmp_path: Path) -> None:
    """The embedded default: the same conditional updates, one process."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'beacon.db'}"
    await asyncio.to_thread(upgrade_to_head, url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with transaction(sessionmaker) as db:
            sessions = [await add_session(db, urgency=u) for u in (4, 2, 0)]
            # The imminent offer takes SLOTS of them, leaving exactly one.
            _, me = await add_volunteer(db, capacity=SLOTS + 1)
        async with transaction(sessionmaker) as db:
            made = await assignments.offer(
                db, sessions[0], me.id, timeout_s=20, high_urgency_slots=SLOTS
            )
            assert made is not None
            assert (
                await assignments.offer(
                    db, sessions[0], me.id, timeout_s=20, high_urgency_slots=SLOTS
                )
                is None
            )

        async def pull() -> str:
            try:
                async with transaction(sessionmaker) as db:
                    await assignments.next_session(db, me, sessions[1:], high_urgency_slots=SLOTS)
            except BeaconError as exc:
                return exc.code
            return "won"

        outcomes = await asyncio.gather(*(pull() for _ in range(5)))
        assert outcomes.count("won") == 1  # one slot was left
        async with transaction(sessionmaker) as db:
            volunteer = await db.get(Volunteer, me.id)
            assert volunteer is not None
            assert volunteer.load == SLOTS + 1
    finally:
        await engine.dispose()
