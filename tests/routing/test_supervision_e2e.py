"""Supervision end to end (issue 14): a real uvicorn, real `websockets` clients on both
sockets, Postgres. A supervisor observes a live chat silently, whispers with its volunteer (the
visitor never sees a whisper: not live, not on resume, not in the stored transcript), joins it
visibly, and every step is an audit event with the supervisor's id and no text."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from app.chat.models import Message, Whisper
from app.core.db import transaction
from tests.routing.wsclient import Frame, VisitorClient, VolunteerClient, about

WHISPER = "go gently, ask about sleep"
REPLY = "ok, asking now"


def _texts(frames: list[Frame]) -> list[str]:
    return [str(f.get("text")) for f in frames if "text" in f]


async def test_observe_whisper_join(world_factory: Callable[..., Any]) -> None:
    world = await world_factory()
    visitor, volunteer = await world.held_chat("I can't sleep and I feel awful")
    sid = visitor.session_id
    sup_account = await world.volunteer(role="supervisor", capacity=0, name="S")
    sup = await VolunteerClient.connect(world.server.ws_url, sup_account.token)

    # Observe: confirmed, then the transcript so far, then live messages; nobody is told.
    await sup.send({"type": "observe", "session_id": sid})
    assert (await sup.expect("supervision", about(sid)))["action"] == "observing"
    replayed = await sup.expect("message", about(sid, seq=1))
    assert replayed["text"] == "I can't sleep and I feel awful"
    await visitor.say("it's been weeks", "v-2")
    assert (await sup.expect("message", about(sid, seq=2)))["text"] == "it's been weeks"
    assert (await volunteer.expect("message", about(sid, seq=2)))["sender"] == "visitor"

    # Whisper: the author gets an ack; the volunteer (and the observing author) get the note.
    await sup.send({"type": "whisper", "session_id": sid, "client_msg_id": "w-1", "text": WHISPER})
    ack = await sup.expect("whisper_ack", about(sid))
    heard = await volunteer.expect("whisper", about(sid))
    assert heard["text"] == WHISPER
    assert heard["whisper_id"] == ack["whisper_id"]
    assert heard["author_id"] == str(sup_account.id)
    assert heard["author_role"] == "supervisor"
    assert (await sup.expect("whisper", about(sid)))["whisper_id"] == ack["whisper_id"]
    # A resend is stored once: same id, nothing announced again.
    await sup.send({"type": "whisper", "session_id": sid, "client_msg_id": "w-1", "text": WHISPER})
    assert (await sup.expect("whisper_ack", about(sid)))["whisper_id"] == ack["whisper_id"]
    # The volunteer answers in a whisper of their own.
    await volunteer.send(
        {"type": "whisper", "session_id": sid, "client_msg_id": "r-1", "text": REPLY}
    )
    await volunteer.expect("whisper_ack", about(sid))
    assert (await sup.expect("whisper", about(sid, text=REPLY)))["author_role"] == "volunteer"
    # Their own note comes back to them (they hold the chat); the resend was never announced.
    later = [f for f in await volunteer.drain(0.3) if f.get("type") == "whisper"]
    assert [f["text"] for f in later] == [REPLY]

    # A supervisor who has not joined may not write into the chat.
    await sup.send({"type": "message", "session_id": sid, "client_msg_id": "s-0", "text": "hello"})
    refused = await sup.expect("error", about(sid))
    assert refused["code"] == "not_joined"

    # Join: the visitor sees the system line; then the supervisor may write.
    await sup.send({"type": "join", "session_id": sid})
    joined = await sup.expect("supervision", about(sid, action="joined"))
    line = await visitor.expect("message", lambda f: f.get("kind") == "supervisor_join")
    assert line["sender"] == "system"
    assert line["seq"] == joined["seq"]
    assert "supervisor" in line["text"]
    await volunteer.expect("message", about(sid, kind="supervisor_join"))
    await sup.send(
        {"type": "message", "session_id": sid, "client_msg_id": "s-1", "text": "I'm here too"}
    )
    await sup.expect("ack", about(sid, client_msg_id="s-1"))
    assert (await visitor.expect("message", lambda f: f["seq"] == joined["seq"] + 1))[
        "text"
    ] == "I'm here too"

    # The visitor saw no whisper, live or on resume; the stored transcript holds none either.
    live = await visitor.drain(0.3)
    assert WHISPER not in _texts(visitor.seen + live)
    assert REPLY not in _texts(visitor.seen + live)
    assert all(f.get("type") in ("session", "ack", "message", "status") for f in visitor.seen)
    await visitor.close()
    again = await VisitorClient.resume(world.server.ws_url, visitor.resume_token, last_seq=0)
    replay = await again.drain(0.5)
    seqs = [f["seq"] for f in replay if f.get("type") == "message"]
    assert seqs == list(range(1, joined["seq"] + 2))
    assert WHISPER not in _texts(replay)
    assert REPLY not in _texts(replay)
    async with transaction(world.state.sessionmaker) as db:
        texts = list(
            await db.scalars(select(Message.text).where(Message.session_id == uuid.UUID(sid)))
        )
        notes = list(
            await db.scalars(select(Whisper.text).where(Whisper.session_id == uuid.UUID(sid)))
        )
    assert WHISPER not in texts
    assert REPLY not in texts
    assert sorted(n or "" for n in notes) == sorted([WHISPER, REPLY])

    # Stop observing (audited too), and the audit trail names who did what, never the text.
    await sup.send({"type": "unobserve", "session_id": sid})
    assert (await sup.expect("supervision", about(sid)))["action"] == "observe_ended"
    events = await world.audit(sid)
    by_action = {e.action: e for e in events}
    for action in (
        "supervision_observe_started",
        "supervisor_joined",
        "supervision_observe_ended",
    ):
        assert by_action[action].actor_id == str(sup_account.id), action
        assert by_action[action].actor_type == "supervisor"
    whispered = [e for e in events if e.action == "whisper_sent"]
    assert [e.actor_type for e in whispered] == ["supervisor", "volunteer"]
    assert all(WHISPER not in str(e.details) and REPLY not in str(e.details) for e in events)
    assert [e.details["purpose"] for e in events if e.action == "transcript_read"].count(
        "observe"
    ) == 1
    for client in (sup, volunteer, again):
        await client.close()


async def test_rights_and_bad_input(world_factory: Callable[..., Any]) -> None:
    world = await world_factory()
    visitor, volunteer = await world.held_chat("I can't sleep and I feel awful")
    sid = visitor.session_id
    other = await world.volunteer(capacity=1, name="O")
    other_ws = await VolunteerClient.connect(world.server.ws_url, other.token)
    # Volunteers neither observe nor join; a volunteer who does not hold it cannot whisper.
    for frame in ({"type": "observe", "session_id": sid}, {"type": "join", "session_id": sid}):
        await volunteer.send(frame)
        assert (await volunteer.expect("error", about(sid)))["code"] == "supervisors_only"
    await other_ws.send({"type": "whisper", "session_id": sid, "client_msg_id": "x", "text": "hi"})
    assert (await other_ws.expect("error", about(sid)))["code"] == "not_assigned"
    # Bad frames get stable codes and the socket stays open.
    await volunteer.send({"type": "whisper", "session_id": sid, "client_msg_id": "b", "text": " "})
    assert (await volunteer.expect("error"))["code"] == "invalid_frame"
    await volunteer.send({"type": "observe", "session_id": "not-a-uuid"})
    assert (await volunteer.expect("error"))["code"] == "invalid_frame"
    big = "x" * (world.state.settings.max_text_bytes + 1)
    await volunteer.send({"type": "whisper", "session_id": sid, "client_msg_id": "c", "text": big})
    assert (await volunteer.expect("error", about(sid)))["code"] == "text_too_large"
    await volunteer.send({"type": "ping"})
    await volunteer.expect("pong")

    sup_account = await world.volunteer(role="supervisor", capacity=0, name="S2")
    base = world.server.base_url
    headers = {"Authorization": f"Bearer {sup_account.token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        # REST: whisper (heard live by the volunteer), join (idempotent), list (audited).
        body = {"client_msg_id": "rest-1", "text": WHISPER}
        made = await http.post(f"/v1/dashboard/sessions/{sid}/whispers", json=body)
        assert made.status_code == 200, made.text
        assert made.json()["duplicate"] is False
        heard = await volunteer.expect("whisper", about(sid))
        assert heard["whisper_id"] == made.json()["whisper_id"]
        again = await http.post(f"/v1/dashboard/sessions/{sid}/whispers", json=body)
        assert again.json()["whisper_id"] == made.json()["whisper_id"]
        assert again.json()["duplicate"] is True
        first = await http.post(f"/v1/dashboard/sessions/{sid}/join")
        second = await http.post(f"/v1/dashboard/sessions/{sid}/join")
        assert first.status_code == 200, first.text
        assert first.json()["seq"] == second.json()["seq"]
        lines = await visitor.drain(0.5)
        assert [f["kind"] for f in lines if f.get("kind") == "supervisor_join"] == [
            "supervisor_join"
        ]
        listed = await http.get(f"/v1/dashboard/sessions/{sid}/whispers")
        assert [w["text"] for w in listed.json()["whispers"]] == [WHISPER]
        blank = await http.post(
            f"/v1/dashboard/sessions/{sid}/whispers", json={"client_msg_id": "b", "text": " "}
        )
        assert (blank.status_code, blank.json()["error"]) == (422, "validation_error")
        missing = await http.post(f"/v1/dashboard/sessions/{uuid.uuid4()}/join")
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    other_headers = {"Authorization": f"Bearer {other.token}"}
    async with httpx.AsyncClient(base_url=base, headers=other_headers) as http:
        denied = await http.get(f"/v1/dashboard/sessions/{sid}/whispers")
        assert (denied.status_code, denied.json()["error"]) == (403, "not_assigned")
        not_sup = await http.post(f"/v1/dashboard/sessions/{sid}/join")
        assert (not_sup.status_code, not_sup.json()["error"]) == (403, "supervisors_only")
    actions = [e.action for e in await world.audit(sid)]
    assert actions.count("supervisor_joined") == 1
    assert actions.count("whisper_sent") == 1
    assert "whispers_read" in actions
    for client in (visitor, volunteer, other_ws):
        await client.close()


async def test_a_volunteer_who_reconnects_gets_the_whispers_again_once_each(
    world_factory: Callable[..., Any],
) -> None:
    """Guidance is not lost to a dropped connection: holding a chat again (on reconnect) replays
    its staff notes after its messages, each once, including one written while away."""
    world = await world_factory(volunteer_grace_s=30.0)
    account = await world.volunteer(capacity=2, name="V")
    visitor, volunteer = await world.held_chat("I can't sleep", token=account.token)
    sid = visitor.session_id
    sup = await VolunteerClient.connect(
        world.server.ws_url, (await world.volunteer(role="supervisor", capacity=0)).token
    )
    await sup.send({"type": "whisper", "session_id": sid, "client_msg_id": "w-1", "text": WHISPER})
    first = await volunteer.expect("whisper", about(sid))
    await volunteer.close()
    await sup.send({"type": "whisper", "session_id": sid, "client_msg_id": "w-2", "text": REPLY})
    await sup.expect("whisper_ack", about(sid, client_msg_id="w-2"))

    again = await VolunteerClient.connect(world.server.ws_url, account.token, last_seq={sid: 0})
    await again.expect("message", about(sid, seq=1))
    replayed = [await again.expect("whisper", about(sid)) for _ in range(2)]
    assert [f["text"] for f in replayed] == [WHISPER, REPLY]
    assert replayed[0]["whisper_id"] == first["whisper_id"]
    assert not [f for f in await again.drain(0.3) if f.get("type") == "whisper"]
    assert [e.action for e in await world.audit(sid)].count("whispers_read") == 1
    for client in (sup, again, visitor):
        await client.close()
