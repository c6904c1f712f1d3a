"""The post-chat survey on a live server: the visitor's real socket ends the chat, the survey is
answered over REST with the resume token (numbers only), and the answers show in the audit
log (that it happened), the dashboard metrics and Prometheus."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from app.audit.models import Event
from app.core.db import transaction
from app.feedback.models import SurveyAnswer
from tests.routing.wsclient import VisitorClient


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token(visitor: VisitorClient) -> str:
    return str(next(f["resume_token"] for f in visitor.seen if f["type"] == "session"))


def _prometheus(text: str, question: str, answer: int) -> float:
    wanted = f'beacon_survey_answers_total{{answer="{answer}",question="{question}"}}'
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1])
    return 0.0


async def test_survey_after_close_counted_everywhere(world_factory: Callable[..., Any]) -> None:
    world = await world_factory()
    supervisor = await world.volunteer(role="supervisor")
    visitor = await VisitorClient.open(world.server.ws_url)
    await visitor.say("thanks for listening earlier", "v-1")
    sid, token = visitor.session_id, _token(visitor)
    url = f"/v1/chat/sessions/{sid}/survey"
    async with httpx.AsyncClient(base_url=world.server.base_url) as http:
        before_metrics = (await http.get("/metrics")).text
        before = (
            await http.get("/v1/dashboard/metrics", headers=_bearer(supervisor.token))
        ).json()["survey"]

        early = await http.post(url, json={"helped": 4}, headers=_bearer(token))
        assert (early.status_code, early.json()["error"]) == (409, "chat_not_ended")

        await visitor.send({"type": "close"})
        await visitor.expect("status", lambda f: f["status"] == "closed")

        for bad in (
            {},
            {"helped": None, "safer": None},
            {"helped": 0},
            {"helped": 6},
            {"helped": "4"},
            {"helped": 4.5},
            {"helped": True},
            {"helped": 4, "comment": "it was fine"},  # no free text, ever
        ):
            refused = await http.post(url, json=bad, headers=_bearer(token))
            assert (refused.status_code, refused.json()["error"]) == (422, "validation_error"), bad
        for headers in ({}, _bearer("not-the-token"), _bearer(token + "x")):
            denied = await http.post(url, json={"helped": 4}, headers=headers)
            assert (denied.status_code, denied.json()["error"]) == (401, "invalid_resume_token")
        # The token opens only its own session.
        other = await http.post(
            f"/v1/chat/sessions/{uuid.uuid4()}/survey", json={"helped": 4}, headers=_bearer(token)
        )
        assert (other.status_code, other.json()["error"]) == (401, "invalid_resume_token")

        stored = await http.post(url, json={"helped": 4, "safer": 2}, headers=_bearer(token))
        assert stored.status_code == 201, stored.text
        assert stored.json() == {"session_id": sid, "helped": 4, "safer": 2}
        twice = await http.post(url, json={"helped": 5}, headers=_bearer(token))
        assert (twice.status_code, twice.json()["error"]) == (409, "survey_already_answered")

        after = (await http.get("/v1/dashboard/metrics", headers=_bearer(supervisor.token))).json()[
            "survey"
        ]
        assert after["answered"] == before["answered"] + 1
        assert after["counts"]["helped"]["4"] == before["counts"]["helped"]["4"] + 1
        assert after["counts"]["safer"]["2"] == before["counts"]["safer"]["2"] + 1
        assert 1 <= after["mean"]["helped"] <= 5
        metrics = (await http.get("/metrics")).text
        assert _prometheus(metrics, "helped", 4) == _prometheus(before_metrics, "helped", 4) + 1
        assert _prometheus(metrics, "safer", 2) == _prometheus(before_metrics, "safer", 2) + 1
    await visitor.ws.close()

    async with transaction(world.state.sessionmaker) as db:
        row = await db.get(SurveyAnswer, uuid.UUID(sid))
        trail = (
            await db.scalars(
                select(Event).where(Event.subject_id == sid, Event.action == "survey_answered")
            )
        ).all()
    assert row is not None
    assert (row.helped, row.safer) == (4, 2)
    # The audit says that it was answered (and which questions), not what.
    assert [(e.actor_type, e.details) for e in trail] == [
        ("visitor", {"questions": ["helped", "safer"]})
    ]
