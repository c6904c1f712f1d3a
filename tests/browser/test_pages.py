"""The visitor page and the dashboard in real headless Chromium, against a real uvicorn on the
run's Postgres database.

Each scenario is a node script (playwright-core driving Debian's chromium, axe-core in the
page) that prints JSON lines: requests to stop/start the server, and one result. This side
serves the app, restarts it when asked (same port: the pages must come back by themselves),
and checks the database after the script's own checks passed. Needs ``bash
scripts/browser-setup.sh`` (chromium from Debian, ``npm ci`` here); without it the test fails
saying so rather than skipping.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from app.audit.models import Event
from app.audit.service import Actor
from app.chat.models import ChatSession, Message
from app.core.config import Settings
from app.core.db import transaction
from app.core.server import http_protocol
from app.feedback.models import SurveyAnswer
from app.main import create_app
from app.resources import canned
from app.resources import service as resources
from app.resources.models import Resource
from app.resources.schemas import ResourceIn
from app.routing.accounts import revoke_volunteer
from app.routing.models import Assignment, Disposition
from tests.conftest import ROOT, LiveServer, free_port
from tests.routing.conftest import end_live_work
from tests.routing.helpers import add_volunteer

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# A guard so a hung browser cannot hang the suite; the scripts wait on conditions, not time.
SCRIPT_DEADLINE_S = 240.0

PARTNER = {
    "name": "lifeline",
    "url": "http://127.0.0.1:9/never",
    "secret": "browser-test-secret-0123456789",
    "phone": "+1 555 0100",
    "locales": ["en"],
    "levels": ["high", "imminent"],
    "fallback": True,
}


def _missing() -> list[str]:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (Debian's chromium)")
    if shutil.which("node") is None:
        missing.append("node")
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        missing.append("tests/browser/node_modules (npm ci)")
    return missing


@pytest.fixture(scope="module", autouse=True)
def browser_tools() -> None:
    missing = _missing()
    if missing:
        pytest.fail(
            "browser tests need " + ", ".join(missing) + ": run `bash scripts/browser-setup.sh`",
            pytrace=False,
        )


class Restartable:
    """A real uvicorn on a fixed port that can be stopped and started again (new app, same
    database), as a deploy or a crash-and-restart would look to the pages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server: LiveServer | None = None

    @property
    def state(self) -> Any:
        assert self.server is not None
        return self.server.app.state.beacon

    async def start(self) -> None:
        app = create_app(self.settings)
        app.state.ws_max_size = self.settings.max_frame_bytes
        self.server = LiveServer(
            app, self.port, http=http_protocol(self.settings.http_header_timeout_s)
        )
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None


@pytest.fixture
async def served(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[Restartable]:
    partners = tmp_path / "partners.json"
    partners.write_text(json.dumps({"partners": [PARTNER]}))
    settings = settings_factory(
        partners_file=partners,
        # Long enough that a loaded machine never races the keyboard or the restart.
        offer_timeout_s=90.0,
        handoff_deadline_s=600.0,
        volunteer_grace_s=120.0,
        routing_interval_s=0.2,
        queue_refresh_s=0.5,
    )
    server = Restartable(settings)
    await server.start()
    async with transaction(server.state.sessionmaker) as db:
        await end_live_work(db)
    try:
        yield server
    finally:
        await server.stop()


async def _account(server: Restartable, role: str) -> dict[str, str]:
    async with transaction(server.state.sessionmaker) as db:
        issued, _ = await add_volunteer(
            db, role=role, online=False, name=f"{role[:3]}-{uuid.uuid4().hex[:4]}"
        )
    return {"id": str(issued.id), "token": issued.token, "name": issued.name}


async def run_script(
    server: Restartable, script: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one node scenario; obey its stop/start requests; return its result line."""
    proc = await asyncio.create_subprocess_exec(
        "node",
        script,
        cwd=HERE,
        env={**os.environ, "BEACON_BASE_URL": server.base_url, **(env or {})},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    result: dict[str, Any] | None = None
    stderr_task = asyncio.ensure_future(proc.stderr.read())

    async def conversation() -> None:
        nonlocal result
        assert proc.stdin is not None
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode().strip()
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            if message["event"] == "stop":
                await server.stop()
                proc.stdin.write(b"stopped\n")
                await proc.stdin.drain()
            elif message["event"] == "start":
                await server.start()
                proc.stdin.write(b"started\n")
                await proc.stdin.drain()
            elif message["event"] == "revoke_restart":
                async with transaction(server.state.sessionmaker) as db:
                    await revoke_volunteer(db, uuid.UUID(message["volunteer_id"]))
                await server.stop()
                await server.start()
                proc.stdin.write(b"done\n")
                await proc.stdin.drain()
            elif message["event"] == "result":
                # The script exits right after this line: nothing more to say to it.
                result = message

    try:
        await asyncio.wait_for(conversation(), SCRIPT_DEADLINE_S)
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await stderr_task).decode(errors="replace")
    assert result is not None, f"{script} printed no result (exit {code}): {stderr[-2000:]}"
    # Shown with `pytest -s`: what axe found at every impact, and the page weight.
    print(json.dumps({"script": script, "axe": result.get("axe"), "weight": result.get("weight")}))
    report = json.dumps(result, indent=1)[-6000:] + stderr[-2000:]
    assert result.get("ok"), report
    assert code == 0, report
    return result


def _shots_env() -> dict[str, str]:
    # Screenshots go to docs/screenshots only when asked (scripts/screenshots.sh): a test run
    # must not rewrite committed files.
    target = os.environ.get("BEACON_SCREENSHOTS_DIR")
    return {"BEACON_SCREENSHOTS_DIR": str(ROOT / target)} if target else {}


async def test_volunteer_and_visitor_flow_in_chromium(served: Restartable) -> None:
    volunteer = await _account(served, "volunteer")
    supervisor = await _account(served, "supervisor")
    tokens = {
        "volunteer": volunteer["token"],
        "supervisor": supervisor["token"],
        "supervisor_id": supervisor["id"],
    }
    result = await run_script(
        served, "flow.mjs", {"BEACON_TOKENS": json.dumps(tokens), **_shots_env()}
    )

    assert all(a["serious"] == 0 for a in result["axe"]), result["axe"]
    assert len(result["axe"]) == 4
    session_id = uuid.UUID(result["session_id"])
    async with transaction(served.state.sessionmaker) as db:
        session = await db.get(ChatSession, session_id)
        assert session is not None
        assert session.status == "closed"
        # The volunteer's assessment (low) became the urgency, lowered from imminent, audited.
        assert session.urgency == 1
        disposition = await db.scalar(
            select(Disposition).where(Disposition.session_id == session_id)
        )
        assert disposition is not None
        assert (disposition.code, disposition.risk_level) == ("safety_plan", 1)
        assert str(disposition.volunteer_id) == volunteer["id"]
        lowered = await db.scalar(
            select(Event).where(
                Event.subject_id == str(session_id), Event.action == "urgency_lowered"
            )
        )
        assert lowered is not None
        assert lowered.details["before"] == 4
        seqs = list(
            (
                await db.scalars(
                    select(Message.seq)
                    .where(Message.session_id == session_id)
                    .order_by(Message.seq)
                )
            ).all()
        )
        texts = list(
            (
                await db.scalars(
                    select(Message.text)
                    .where(Message.session_id == session_id, Message.sender != "system")
                    .order_by(Message.seq)
                )
            ).all()
        )
        reassigned = await db.scalar(
            select(Assignment.volunteer_id).where(
                Assignment.session_id == uuid.UUID(result["reassigned"]),
                Assignment.status == "active",
            )
        )
    assert str(reassigned) == supervisor["id"]
    # What was typed offline was stored exactly once, after the restart.
    assert seqs == list(range(1, len(seqs) + 1))
    assert texts.count("hello? it went quiet") == 1
    assert texts.count("Still here - my connection dropped for a moment.") == 1


async def test_visitor_page_alone_in_chromium(served: Restartable) -> None:
    volunteer = await _account(served, "volunteer")
    result = await run_script(
        served,
        "visitor.mjs",
        {"BEACON_TOKEN": volunteer["token"], "BEACON_VOLUNTEER_ID": volunteer["id"]},
    )

    assert all(a["serious"] == 0 for a in result["axe"]), result["axe"]
    weight = result["weight"]
    # A budget, not a timing: the page a person in crisis opens on a bad connection stays small.
    assert weight["total_bytes"] < 64 * 1024, weight
    assert set(weight["files"]) >= {"/chat", "/static/chat.js", "/static/chat.css"}
    session_id = uuid.UUID(result["session_id"])
    async with transaction(served.state.sessionmaker) as db:
        session = await db.get(ChatSession, session_id)
        assert session is not None
        assert session.status == "closed"
        texts = list(
            (await db.scalars(select(Message.text).where(Message.session_id == session_id))).all()
        )
        erased = await db.scalar(
            select(Event).where(
                Event.subject_id == str(session_id), Event.action == "transcript_erased"
            )
        )
    assert texts
    assert all(t is None for t in texts)
    assert erased is not None


async def test_visitor_refused_for_now_waits_calmly_and_connects(
    settings_factory: Callable[..., Settings],
) -> None:
    # One new session at a time from an address, one more every 2 s.
    server = Restartable(settings_factory(session_open_burst=1, session_open_per_min=30.0))
    await server.start()
    try:
        result = await run_script(server, "admission.mjs")
    finally:
        await server.stop()
    assert [c["ok"] for c in result["checks"]] == [True, True, True]


async def test_visitor_sees_a_resource_card_and_answers_the_survey(served: Restartable) -> None:
    volunteer = await _account(served, "volunteer")
    async with transaction(served.state.sessionmaker) as db:
        # Runs share one database: the search must find only this test's "Night line".
        await db.execute(delete(Resource))
        resource = await resources.add(
            db,
            ResourceIn(
                title="Night line",
                locale="en",
                levels=["none", "low", "moderate", "high", "imminent"],
                phone="+44 800 123 456",
                url="https://example.org/night-line",
                text="Trained listeners, every night from 10 pm to 6 am.",
            ),
            actor=Actor("admin", "test"),
        )
        await canned.add(
            db,
            canned.CannedIn(
                locale="en",
                title="Introduce yourself",
                text="Hi, I'm {volunteer_name}. I'm here to listen.",
            ),
            actor=Actor("admin", "test"),
        )
    result = await run_script(
        served,
        "card_survey.mjs",
        {"BEACON_TOKEN": volunteer["token"], "BEACON_NAME": volunteer["name"], **_shots_env()},
    )
    assert all(a["serious"] == 0 for a in result["axe"]), result["axe"]
    session_id = uuid.UUID(result["session_id"])
    async with transaction(served.state.sessionmaker) as db:
        card = await db.scalar(
            select(Message).where(Message.session_id == session_id, Message.kind == "resource")
        )
        answer = await db.get(SurveyAnswer, session_id)
    assert card is not None
    assert card.sender_id == volunteer["id"]
    assert str(resource.id) in (card.text or "")
    assert answer is not None
    assert (answer.helped, answer.safer) == (4, 3)
    async with transaction(served.state.sessionmaker) as db:
        chat = await db.get(ChatSession, session_id)
    # The visitor ticked the conversation only (after the page refused a number-less "contact").
    assert chat is not None
    assert (chat.consent_transcript, chat.consent_contact) == (True, False)
