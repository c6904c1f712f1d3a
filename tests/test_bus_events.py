"""Bus payloads are typed: each kind round-trips, and the wire form is what it always was."""

from __future__ import annotations

import uuid

import pytest

from app.bus import QUEUE_CHANNEL, RESYNC, session_channel
from app.bus.events import (
    BusEvent,
    Erased,
    MessageStored,
    MuteChanged,
    Queued,
    Resync,
    StatusChanged,
    SupervisorAlert,
    Typing,
    UrgencyRaised,
    Wake,
    WhisperStored,
    decode,
    encode,
    session_id_of,
)
from app.chat import events
from app.escalation.alerts import alert

SID = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.mark.parametrize(
    "event",
    [
        MessageStored(str(SID), 3, "visitor", "c-1"),
        StatusChanged(str(SID), "waiting"),
        UrgencyRaised(str(SID), 4, 1, 7),
        Queued(str(SID), 2),
        Typing(str(SID), "volunteer"),
        Erased(str(SID)),
        Wake(),
        Resync(),
        SupervisorAlert("escalation", str(SID), "imminent", 4, "escalation_started", {"x": 1}),
        SupervisorAlert("at_risk", str(SID), "high", 3, "visitor_lost", {}),
        SupervisorAlert("supervision", str(SID), "high", 3, "mute_requested", {"mute_id": "m"}),
        WhisperStored(str(SID), 5),
        MuteChanged(str(SID), "m", "2026-12-01T12:00:00+00:00"),
        MuteChanged(str(SID), "m", None),
    ],
)
def test_each_kind_round_trips(event: BusEvent) -> None:
    payload = encode(event)
    assert payload["kind"] == event.kind
    assert decode(payload) == event


def test_the_wire_form_is_unchanged() -> None:
    assert events.status_changed(SID, "closed") == [
        (session_channel(SID), {"kind": "status", "session_id": str(SID), "status": "closed"}),
        (QUEUE_CHANNEL, {"kind": "status", "session_id": str(SID), "status": "closed"}),
    ]
    assert events.status_changed(SID, "abandoned", queue=False) == [
        (session_channel(SID), {"kind": "status", "session_id": str(SID), "status": "abandoned"})
    ]
    assert events.message_stored(SID, 5, "visitor", None) == [
        (
            session_channel(SID),
            {
                "kind": "message",
                "session_id": str(SID),
                "seq": 5,
                "sender": "visitor",
                "client_msg_id": None,
            },
        )
    ]
    channel, payload = alert(SID, 4, "handoff_started", handoff_id="h")
    assert channel == "supervisors"
    assert payload == {
        "kind": "escalation",
        "session_id": str(SID),
        "urgency": "imminent",
        "urgency_value": 4,
        "reason": "handoff_started",
        "handoff_id": "h",
    }


def test_channels_get_their_own_payload_objects() -> None:
    (_, first), (_, second) = events.status_changed(SID, "waiting")
    first["status"] = "mutated"
    assert second["status"] == "waiting"


@pytest.mark.parametrize(
    "payload",
    [
        {"kind": "from_a_newer_version", "session_id": str(SID)},
        {"kind": "status"},
        {"no": "kind"},
        {"kind": 3},
        {"kind": "escalation", "session_id": str(SID)},
    ],
)
def test_unknown_or_incomplete_payloads_decode_to_none(payload: dict[str, object]) -> None:
    assert decode(payload) is None


def test_resync_and_session_ids() -> None:
    assert decode(dict(RESYNC)) == Resync()
    assert session_id_of(Erased(str(SID))) == SID
    assert session_id_of(Erased("not-a-uuid")) is None
    assert session_id_of(Wake()) is None
