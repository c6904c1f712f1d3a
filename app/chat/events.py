"""Bus payloads the chat domain publishes. They are hints with ids only, never message text.

On ``session:<id>`` (see :func:`app.bus.session_channel`):

* ``{"kind": "message", "session_id", "seq", "sender", "client_msg_id"}`` — message ``seq`` is
  committed; load it from the database.
* ``{"kind": "status", "session_id", "status"}`` — the session changed state.
* ``{"kind": "urgency", "session_id", "urgency", "previous", "seq"}`` — urgency rose.
* ``{"kind": "typing", "session_id", "sender"}`` — someone is typing (not durable).
* ``{"kind": "erased", "session_id"}`` — the visitor erased the transcript.

On ``queue`` (:data:`app.bus.QUEUE_CHANNEL`): the ``status`` and ``urgency`` payloads above, plus
``{"kind": "opened", "session_id", "urgency"}`` when a visitor opens a session.

Other parts (routing, escalation) that change a session must publish ``status`` / ``message``
payloads the same way, inside their transaction (``bus.publish(..., db=db)``).
"""

from __future__ import annotations

import uuid

from app.bus import QUEUE_CHANNEL, Event, session_channel


def message_stored(
    session_id: uuid.UUID, seq: int, sender: str, client_msg_id: str | None
) -> list[Event]:
    payload = {
        "kind": "message",
        "session_id": str(session_id),
        "seq": seq,
        "sender": sender,
        "client_msg_id": client_msg_id,
    }
    return [(session_channel(session_id), payload)]


def status_changed(session_id: uuid.UUID, status: str) -> list[Event]:
    payload = {"kind": "status", "session_id": str(session_id), "status": status}
    return [(session_channel(session_id), payload), (QUEUE_CHANNEL, dict(payload))]


def urgency_raised(session_id: uuid.UUID, *, urgency: int, previous: int, seq: int) -> list[Event]:
    payload = {
        "kind": "urgency",
        "session_id": str(session_id),
        "urgency": urgency,
        "previous": previous,
        "seq": seq,
    }
    return [(session_channel(session_id), payload), (QUEUE_CHANNEL, dict(payload))]


def session_opened(session_id: uuid.UUID, urgency: int) -> list[Event]:
    return [(QUEUE_CHANNEL, {"kind": "opened", "session_id": str(session_id), "urgency": urgency})]


def typing(session_id: uuid.UUID, sender: str) -> list[Event]:
    payload = {"kind": "typing", "session_id": str(session_id), "sender": sender}
    return [(session_channel(session_id), payload)]


def erased(session_id: uuid.UUID) -> list[Event]:
    return [(session_channel(session_id), {"kind": "erased", "session_id": str(session_id)})]
