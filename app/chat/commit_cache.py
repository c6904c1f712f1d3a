"""What the group commit remembers between batches, per session: the visitor's recent texts (the
triage context) and the session row as this process last committed it (for the one-statement
commit, app/chat/commit_fast.py). Both are hints that are checked before use, never trusted:
a context only for the exact ``last_seq`` it was read at, a row only through a guarded UPDATE
that stores nothing if the row moved on."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.chat.commit_plan import SessionState


class ContextCache:
    """Recent visitor texts per session, valid only for the exact ``last_seq`` they were read
    at — so a message stored by another instance (which moves last_seq) is never missed."""

    def __init__(self, size: int, keep: int) -> None:
        self._size = size
        self._keep = keep
        self._entries: OrderedDict[uuid.UUID, tuple[int, list[str]]] = OrderedDict()

    def get(self, session_id: uuid.UUID, last_seq: int) -> list[str] | None:
        entry = self._entries.get(session_id)
        if entry is None or entry[0] != last_seq:
            return None
        self._entries.move_to_end(session_id)
        return list(entry[1])

    def update(self, contexts: Mapping[uuid.UUID, tuple[int, list[str]]]) -> None:
        for session_id, (last_seq, texts) in contexts.items():
            self._entries[session_id] = (last_seq, texts[-self._keep :] if self._keep else [])
            self._entries.move_to_end(session_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def carry(self, moves: Mapping[uuid.UUID, tuple[int, int]]) -> None:
        """Keep an entry current across messages that are not the visitor's (a volunteer's
        reply, a system notice): without this, the visitor's next message after every reply
        re-read its context from the database."""
        for session_id, (before, after) in moves.items():
            entry = self._entries.get(session_id)
            if entry is not None and entry[0] == before:
                self._entries[session_id] = (after, entry[1])

    def forget(self, session_id: uuid.UUID) -> None:
        self._entries.pop(session_id, None)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A session row as this process's last commit left it: what the commit plan reads."""

    status: str
    last_seq: int
    urgency: int
    signals: tuple[str, ...]
    spoke: bool

    def state(self) -> SessionState:
        return SessionState(
            status=self.status,
            last_seq=self.last_seq,
            urgency=self.urgency,
            signals=list(self.signals),
            spoke=self.spoke,
        )


class SnapshotCache:
    """Least recently used first out, like the contexts."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[uuid.UUID, Snapshot] = OrderedDict()

    def get(self, session_id: uuid.UUID) -> Snapshot | None:
        snapshot = self._entries.get(session_id)
        if snapshot is not None:
            self._entries.move_to_end(session_id)
        return snapshot

    def remember(self, states: Mapping[uuid.UUID, SessionState], ids: Iterable[uuid.UUID]) -> None:
        """``states`` as they stand after a commit that stored them (seqs, urgency, signals).
        Every commit moves ``last_seq``, so an older one (a batch of the other worker settling
        after a later one) is not taken."""
        for session_id in ids:
            state = states[session_id]
            current = self._entries.get(session_id)
            if current is not None and current.last_seq > state.last_seq:
                continue
            self._entries[session_id] = Snapshot(
                status=state.status,
                last_seq=state.last_seq,
                urgency=state.urgency,
                signals=tuple(state.signals),
                spoke=state.spoke,
            )
            self._entries.move_to_end(session_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, session_id: uuid.UUID) -> None:
        self._entries.pop(session_id, None)
