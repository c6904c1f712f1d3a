"""Offer, assignment and session frames are typed models; the JSON they put on the bus is the
wire format docs/protocol.md describes (field for field, in order)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.core.db import utcnow
from app.routing.frames import AlertOut
from app.routing.notices import (
    OfferMade,
    assigned_frame,
    payload,
    session_update,
    volunteer_channel,
)
from tests.factories import chat_session


def test_offer_frame() -> None:
    now = utcnow()
    sid, vid = uuid.uuid4(), uuid.uuid4()
    made = OfferMade(
        1, sid, vid, 3, ["method:overdose"], 12.34, now + timedelta(seconds=20), "route"
    )
    frame = made.frame(now)
    assert list(frame) == [
        "type",
        "session_id",
        "urgency",
        "urgency_value",
        "signals",
        "waited_s",
        "expires_in_s",
        "kind",
    ]
    assert frame == {
        "type": "offer",
        "session_id": str(sid),
        "urgency": "high",
        "urgency_value": 3,
        "signals": ["method:overdose"],
        "waited_s": 12.3,
        "expires_in_s": 20.0,
        "kind": "route",
    }
    notices = made.notices(now)
    assert notices[0].channel == volunteer_channel(vid)
    assert notices[1].visitor_status == (sid, "offered")


def test_assigned_frame() -> None:
    now = utcnow()
    session = chat_session(now=now, waited_s=5, urgency=4, last_seq=7, locale="es")
    assert assigned_frame(session, "pull", now) == {
        "type": "assigned",
        "session_id": str(session.id),
        "urgency": "imminent",
        "urgency_value": 4,
        "signals": [],
        "waited_s": 5.0,
        "last_seq": 7,
        "locale": "es",
        "kind": "pull",
    }


def test_session_frame_names_the_new_holder_only_on_a_transfer() -> None:
    sid, vid, to = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert session_update(vid, sid, "closed").frame == {
        "type": "session",
        "session_id": str(sid),
        "status": "closed",
    }
    assert session_update(vid, sid, "transferred", to=str(to)).frame["to"] == str(to)


def test_a_holders_alert_keeps_every_field_escalation_gives_it() -> None:
    fields = {"kind": "escalation", "session_id": "s", "reason": "imminent_in_chat", "x": 1}
    assert payload(AlertOut(**fields)) == {"type": "alert", **fields}
