"""The last few committed messages of each session, kept by this process after its commits.

A local socket told "seq N exists" (a bus hint) can usually deliver N straight from here instead
of querying for it; a miss — a message stored by another instance, or one that aged out — falls
back to the database, which is always the truth. Bounded (sessions x messages), and forgotten on
erasure.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.chat.service import MessageView

# How long a socket waits for a commit it has already heard about to be remembered here (it is
# microseconds in practice: the hint and the commit's own reply race each other).
_SETTLE_WAIT_S = 0.5


@dataclass(slots=True)
class Staged:
    """A batch whose COMMIT is in flight: its hints may arrive before the commit returns."""

    views: Sequence[tuple[uuid.UUID, MessageView]]
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class RecentMessages:
    def __init__(self, *, max_sessions: int = 4096, per_session: int = 32) -> None:
        self._max_sessions = max_sessions
        self._per_session = per_session
        self._sessions: OrderedDict[uuid.UUID, deque[MessageView]] = OrderedDict()
        self._staged: dict[uuid.UUID, list[Staged]] = {}
        self.hits = 0
        self.misses = 0

    # -- the committer's side ------------------------------------------------------------------

    def stage(self, views: Sequence[tuple[uuid.UUID, MessageView]]) -> Staged:
        """Just before COMMIT: announce what is about to exist (not readable yet)."""
        staged = Staged(views)
        for session_id in {session_id for session_id, _ in views}:
            self._staged.setdefault(session_id, []).append(staged)
        return staged

    def settle(self, staged: Staged, *, committed: bool) -> None:
        """After COMMIT returned (or failed): only committed messages become readable."""
        if committed:
            for session_id, view in staged.views:
                self.add(session_id, view)
        for session_id in {session_id for session_id, _ in staged.views}:
            waiting = self._staged.get(session_id)
            if waiting is not None and staged in waiting:
                waiting.remove(staged)
                if not waiting:
                    del self._staged[session_id]
        staged.settled.set()

    # -- the sockets' side -----------------------------------------------------------------------

    async def read(self, session_id: uuid.UUID, first_seq: int, last_seq: int) -> list[MessageView]:
        """Like :meth:`range`, but if ``first_seq`` belongs to a batch whose commit is still
        returning, wait (briefly) for it instead of missing."""
        found = self.range(session_id, first_seq, last_seq)
        if found:
            return found
        for staged in tuple(self._staged.get(session_id, ())):
            if any(sid == session_id and v.seq == first_seq for sid, v in staged.views):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(staged.settled.wait(), _SETTLE_WAIT_S)
                return self.range(session_id, first_seq, last_seq)
        return []

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
            self.misses += 1
            return []
        self.hits += 1
        start = first_seq - kept[0].seq
        return [m for m in list(kept)[start:] if m.seq <= last_seq]

    def forget(self, session_id: uuid.UUID) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
