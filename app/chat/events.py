"""Bus payloads the chat domain publishes. They are hints with ids only, never message text.

On ``session:<id>`` (see :func:`app.bus.session_channel`):

* ``{"kind": "message", "session_id", "seq", "sender", "client_msg_id"}`` — message ``seq`` is
  committed; load it from the database.
* ``{"kind": "status", "session_id", "status"}`` — the session changed state.
* ``{"kind": "urgency", "session_id", "urgency", "previous", "seq"}`` — urgency rose.
* ``{"kind": "typing", "session_id", "sender"}`` — someone is typing (not durable).
* ``{"kind": "erased", "session_id"}`` — the visitor erased the transcript.

On ``queue`` (:data:`app.bus.QUEUE_CHANNEL`): the ``status`` and ``urgency`` payloads above, plus
``{"kind": "queued", "session_id", "urgency"}`` when a waiting session's visitor first speaks
(it joins the queue only then; a hello alone announces nothing).

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


def status_changed(session_id: uuid.UUID, status: str, *, queue: bool = True) -> list[Event]:
    """``queue=False`` for a session that was never in the queue: nothing there to refresh."""
    payload = {"kind": "status", "session_id": str(session_id), "status": status}
    if not queue:
        return [(session_channel(session_id), payload)]
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


def joined_queue(session_id: uuid.UUID, urgency: int) -> list[Event]:
    payload = {"kind": "queued", "session_id": str(session_id), "urgency": urgency}
    return [(QUEUE_CHANNEL, payload)]


def typing(session_id: uuid.UUID, sender: str) -> list[Event]:
    payload = {"kind": "typing", "session_id": str(session_id), "sender": sender}
    return [(session_channel(session_id), payload)]


def erased(session_id: uuid.UUID) -> list[Event]:
    return [(session_channel(session_id), {"kind": "erased", "session_id": str(session_id)})]
