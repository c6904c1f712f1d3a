"""Bus payloads the chat domain publishes (typed in :mod:`app.bus.events`). They are hints
with ids only, never message text.

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
from app.bus.events import (
    BusEvent,
    Erased,
    MessageStored,
    Queued,
    StatusChanged,
    Typing,
    UrgencyRaised,
    encode,
)


def _on(channels: tuple[str, ...], event: BusEvent) -> list[Event]:
    # Each channel gets its own dict: a subscriber mutating one cannot touch another's.
    return [(channel, encode(event)) for channel in channels]


def message_stored(
    session_id: uuid.UUID, seq: int, sender: str, client_msg_id: str | None
) -> list[Event]:
    event = MessageStored(str(session_id), seq, sender, client_msg_id)
    return _on((session_channel(session_id),), event)


def status_changed(session_id: uuid.UUID, status: str, *, queue: bool = True) -> list[Event]:
    """``queue=False`` for a session that was never in the queue: nothing there to refresh."""
    channels = (
        (session_channel(session_id), QUEUE_CHANNEL) if queue else (session_channel(session_id),)
    )
    return _on(channels, StatusChanged(str(session_id), status))


def urgency_raised(session_id: uuid.UUID, *, urgency: int, previous: int, seq: int) -> list[Event]:
    event = UrgencyRaised(str(session_id), urgency, previous, seq)
    return _on((session_channel(session_id), QUEUE_CHANNEL), event)


def joined_queue(session_id: uuid.UUID, urgency: int) -> list[Event]:
    return _on((QUEUE_CHANNEL,), Queued(str(session_id), urgency))


def typing(session_id: uuid.UUID, sender: str) -> list[Event]:
    return _on((session_channel(session_id),), Typing(str(session_id), sender))


def erased(session_id: uuid.UUID) -> list[Event]:
    return _on((session_channel(session_id),), Erased(str(session_id)))
