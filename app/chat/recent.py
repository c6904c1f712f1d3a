"""The last few committed messages of each session, kept by this process after its commits.

A local socket told "seq N exists" (a bus hint) can usually deliver N straight from here instead
of querying for it; a miss — a message stored by another instance, or one that aged out — falls
back to the database, which is always the truth. Bounded (sessions x messages), and forgotten on
erasure.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque

from app.chat.service import MessageView


class RecentMessages:
    def __init__(self, *, max_sessions: int = 4096, per_session: int = 32) -> None:
        self._max_sessions = max_sessions
        self._per_session = per_session
        self._sessions: OrderedDict[uuid.UUID, deque[MessageView]] = OrderedDict()

    def add(self, session_id: uuid.UUID, message: MessageView) -> None:
        kept = self._sessions.get(session_id)
        if kept is None:
            kept = self._sessions[session_id] = deque(maxlen=self._per_session)
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(session_id)
        if kept and message.seq != kept[-1].seq + 1:
            kept.clear()  # keep only a gap-free run, so a range read is all-or-prefix
        kept.append(message)

    def range(self, session_id: uuid.UUID, first_seq: int, last_seq: int) -> list[MessageView]:
        """The cached messages ``first_seq..last_seq`` starting exactly at ``first_seq`` (a
        prefix of the range, possibly empty)."""
        kept = self._sessions.get(session_id)
        if not kept or first_seq < kept[0].seq or first_seq > kept[-1].seq:
            return []
        start = first_seq - kept[0].seq
        return [m for m in list(kept)[start:] if m.seq <= last_seq]

    def forget(self, session_id: uuid.UUID) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
