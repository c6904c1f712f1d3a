"""Dashboard REST: authentication, rights, audited transcript reads, queue, claims, OpenAPI."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import Event
from app.chat.models import ChatSession, Message
from app.core.db import utcnow
from app.routing import accounts
from app.routing.models import Volunteer
from tests.routing.helpers import SLOTS, add_session, add_volunteer, hide_other_sessions


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _reads(db: AsyncSession, session_id: uuid.UUID, actor: uuid.UUID) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(Event)
        .where(
            Event.subject_id == str(session_id),
            Event.action == "transcript_read",
            Event.actor_id == str(actor),
        )
    )
    return int(count or 0)


async def test_tokens_missing_bad_revoked_expired(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    issued, _ = await add_volunteer(db)
    response = await client.get("/v1/dashboard/me")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    response = await client.get("/v1/dashboard/me", headers=_auth("bv_nope"))
    assert response.status_code == 401
    response = await client.get("/v1/dashboard/me", headers=_auth(issued.token))
    assert response.status_code == 200
    assert response.json()["volunteer_id"] == str(issued.id)

    await db.execute(
        update(Volunteer)
        .where(Volunteer.id == issued.id)
        .values(token_expires_at=utcnow() - timedelta(seconds=1))
    )
    assert (await client.get("/v1/dashboard/me", headers=_auth(issued.token))).status_code == 401
    new_token = await accounts.rotate_token(db, issued.id, token_ttl_s=60)
    assert (await client.get("/v1/dashboard/me", headers=_auth(new_token))).status_code == 200
    await accounts.revoke_volunteer(db, issued.id)
    response = await client.get("/v1/dashboard/me", headers=_auth(new_token))
    assert response.status_code == 401


async def test_volunteer_cannot_read_write_or_close_others_sessions(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    session_id = await add_session(db, urgency=2)
    db.add(Message(session_id=session_id, seq=1, sender="visitor", text="help", sent_at=utcnow()))
    await db.execute(update(ChatSession).where(ChatSession.id == session_id).values(last_seq=1))
    holder, holder_p = await add_volunteer(db)
    stranger, stranger_p = await add_volunteer(db)
    supervisor, supervisor_p = await add_volunteer(db, role="supervisor")

    response = await client.post(
        f"/v1/dashboard/sessions/{session_id}/claim", headers=_auth(holder.token)
    )
    assert response.status_code == 200
    assert response.json()["status"] == "active"

    # The stranger: no transcript, no close, no release, no claim, no transfer.
    url = f"/v1/dashboard/sessions/{session_id}"
    response = await client.get(url, headers=_auth(stranger.token))
    assert response.status_code == 403
    assert response.json()["error"] == "not_assigned"
    for path, body in (
        ("/close", {"disposition": "other", "risk_level": 0}),
        ("/release", None),
        ("/transfer", {}),
    ):
        response = await client.post(url + path, json=body, headers=_auth(stranger.token))
        assert response.status_code == 403, path
        assert response.json()["error"] == "not_assigned"
    response = await client.post(url + "/claim", headers=_auth(stranger.token))
    assert response.status_code == 409
    assert response.json()["error"] == "session_taken"
    assert await _reads(db, session_id, stranger_p.id) == 0
    listed = await client.get("/v1/dashboard/sessions", headers=_auth(stranger.token))
    assert str(session_id) not in {s["session_id"] for s in listed.json()["sessions"]}

    # The holder and a supervisor may read; each read is one audit event.
    for account, principal in ((holder, holder_p), (supervisor, supervisor_p)):
        response = await client.get(url, headers=_auth(account.token))
        assert response.status_code == 200
        body = response.json()
        assert [m["text"] for m in body["transcript"]] == ["help"]
        assert body["volunteer_id"] == str(holder.id)
        assert await _reads(db, session_id, principal.id) == 1
    await client.get(url, headers=_auth(holder.token))
    assert await _reads(db, session_id, holder_p.id) == 2

    # Closing needs a known disposition and a level.
    response = await client.post(
        url + "/close", json={"disposition": "bogus", "risk_level": 0}, headers=_auth(holder.token)
    )
    assert response.status_code == 422
    response = await client.post(
        url + "/close",
        json={"disposition": "supported", "risk_level": "low", "notes": "calmer"},
        headers=_auth(holder.token),
    )
    assert response.status_code == 200
    urgency = await db.scalar(select(ChatSession.urgency).where(ChatSession.id == session_id))
    assert urgency == 1
    # Once closed the volunteer no longer holds it: no more reads.
    assert (await client.get(url, headers=_auth(holder.token))).status_code == 403


async def test_queue_listing_filters_and_supervisor_views(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await hide_other_sessions(db)
    imminent = await add_session(db, urgency=4, locale="es-MX")
    calm = await add_session(db, urgency=0, waited_s=10, locale="en")
    volunteer, _ = await add_volunteer(db)
    supervisor, _ = await add_volunteer(db, role="supervisor")

    response = await client.get("/v1/dashboard/queue", headers=_auth(volunteer.token))
    assert response.status_code == 200
    items = [i["session_id"] for i in response.json()["items"]]
    assert items.index(str(imminent)) < items.index(str(calm))
    response = await client.get(
        "/v1/dashboard/queue",
        params={"urgency": "imminent", "language": "es"},
        headers=_auth(volunteer.token),
    )
    filtered = response.json()["items"]
    assert str(imminent) in [i["session_id"] for i in filtered]
    assert all(i["urgency"] == "imminent" and i["language"] == "es" for i in filtered)
    bad = await client.get(
        "/v1/dashboard/queue", params={"urgency": "urgent"}, headers=_auth(volunteer.token)
    )
    assert bad.status_code == 422

    assert (
        await client.get("/v1/dashboard/volunteers", headers=_auth(volunteer.token))
    ).status_code == 403
    response = await client.get("/v1/dashboard/volunteers", headers=_auth(supervisor.token))
    assert response.status_code == 200
    assert str(volunteer.id) in {v["volunteer_id"] for v in response.json()["volunteers"]}

    metrics = await client.get("/v1/dashboard/metrics", headers=_auth(volunteer.token))
    assert metrics.status_code == 200
    assert metrics.json()["queue"]["imminent"] >= 1

    # "next" pulls the most urgent eligible session: the imminent one (high+ ignores language).
    response = await client.post("/v1/dashboard/next", headers=_auth(volunteer.token))
    assert response.status_code == 200
    assert response.json()["session_id"] == str(imminent)
    me = (await client.get("/v1/dashboard/me", headers=_auth(volunteer.token))).json()
    assert me["sessions"] == [str(imminent)]
    assert me["load"] == min(SLOTS, me["capacity"])  # an imminent chat is worth more than one


async def test_openapi_declares_dashboard_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    close = spec["paths"]["/v1/dashboard/sessions/{session_id}/close"]["post"]
    for status in ("401", "403", "404", "409", "422"):
        assert status in close["responses"]
    assert "/v1/dashboard/queue" in spec["paths"]
