"""The decisions of one group commit, with no I/O: which messages of a batch are refused, which
are resends, what seq each new one gets, how the session's urgency and signals move, and which
audit entries and bus events the commit carries.

:class:`~app.chat.committer.MessageCommitter` does the I/O around it (lock the rows, look up
stored resends, triage, INSERT, write back, publish); everything it decides in between is here,
so that it is tested with plain values (tests/chat/test_commit_plan.py) and the transaction code
stays a short list of statements.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from app.bus import Event
from app.chat import events
from app.chat.errors import SessionClosed, SessionNotFound
from app.triage import TriageResult

MAX_SESSION_SIGNALS: Final = 100

ResendKey = tuple[uuid.UUID, str, str]  # session, sender, client_msg_id


@dataclass(frozen=True, slots=True)
class AuditOnStore:
    """An audit entry that must commit with the message it is about (it gains the message's
    seq): a crash can then never leave one without the other."""

    action: str
    actor_type: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NewMessage:
    session_id: uuid.UUID
    sender: str  # visitor | volunteer | system
    text: str
    client_msg_id: str | None = None
    sender_id: str | None = None
    kind: str | None = None  # e.g. "safety" for system messages
    audit: AuditOnStore | None = None  # recorded only if the message is newly stored


@dataclass(frozen=True, slots=True)
class StoredMessage:
    session_id: uuid.UUID
    seq: int
    sender: str
    client_msg_id: str | None
    sent_at: datetime
    duplicate: bool  # a resend: nothing new was stored, ``seq`` is the original's
    level: int | None  # the message's own triage level (visitor messages)
    urgency: int  # the session's urgency after this message
    previous_urgency: int

    @property
    def urgency_raised(self) -> bool:
        return self.urgency > self.previous_urgency


Outcome = StoredMessage | Exception


@dataclass(slots=True)
class SessionState:
    """A locked session row as the batch sees it; the plan moves it forward in place."""

    status: str
    last_seq: int
    urgency: int
    signals: list[str]
    spoke: bool  # the visitor has sent a message before (the session is in the queue)
    context: list[str] | None = None  # recent visitor texts, when this batch needs them
    dirty: bool = False  # urgency or signals changed
    joined: bool = False  # this batch holds the visitor's first message


@dataclass(frozen=True, slots=True)
class Existing:
    """A message already stored under a resend's ``client_msg_id``."""

    seq: int
    sent_at: datetime
    level: int | None


@dataclass(slots=True)
class Sorting:
    """The batch split up: refused or already answered (``outcomes``), to store (``todo``, in
    batch order), and resends within the batch (``followers``: index, index of its first copy)."""

    outcomes: list[Outcome | None]
    todo: list[int]
    followers: list[tuple[int, int]]
    keys: list[ResendKey]  # every client_msg_id key of the batch, first copies only


@dataclass(frozen=True, slots=True)
class Audit:
    """One audit entry the commit records (subject: the session)."""

    actor_type: str
    action: str
    session_id: uuid.UUID
    details: dict[str, Any]
    actor_id: str | None = None


@dataclass(slots=True)
class Plan:
    rows: list[dict[str, Any]] = field(default_factory=list)
    audits: list[Audit] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    changed: set[uuid.UUID] = field(default_factory=set)  # sessions whose last_seq moved
    # Waiting sessions this batch made routable, or more urgent: their visitor first spoke
    # (joined the queue), or their urgency rose. The commit may offer them at once.
    routable: set[uuid.UUID] = field(default_factory=set)

    def contexts(self, states: Mapping[uuid.UUID, SessionState]) -> dict[uuid.UUID, Any]:
        """Per session: the last_seq its recent texts are current for, and those texts."""
        return {
            session_id: (state.last_seq, state.context)
            for session_id, state in states.items()
            if state.context is not None
        }


def sort(
    messages: Sequence[NewMessage],
    states: Mapping[uuid.UUID, SessionState],
    *,
    terminal: Collection[str],
) -> Sorting:
    """Refuse what cannot be stored; fold resends within the batch onto their first copy."""
    sorting = Sorting(outcomes=[None] * len(messages), todo=[], followers=[], keys=[])
    first_of: dict[ResendKey, int] = {}
    for i, message in enumerate(messages):
        state = states.get(message.session_id)
        if state is None:
            sorting.outcomes[i] = SessionNotFound("no such session")
            continue
        if state.status in terminal:
            sorting.outcomes[i] = SessionClosed("the session is closed")
            continue
        if message.client_msg_id is not None:
            key = (message.session_id, message.sender, message.client_msg_id)
            if key in first_of:
                sorting.followers.append((i, first_of[key]))
                continue
            first_of[key] = i
        sorting.todo.append(i)
    sorting.keys = list(first_of)
    return sorting


def answer_resends(
    sorting: Sorting,
    messages: Sequence[NewMessage],
    states: Mapping[uuid.UUID, SessionState],
    existing: Mapping[tuple[uuid.UUID, str, str | None], Existing],
) -> None:
    """Messages stored earlier (by us, a dead process, another instance) get their original
    seq back and are not stored again."""
    still_todo = []
    for i in sorting.todo:
        message = messages[i]
        found = existing.get((message.session_id, message.sender, message.client_msg_id))
        if found is None:
            still_todo.append(i)
            continue
        urgency = states[message.session_id].urgency
        sorting.outcomes[i] = StoredMessage(
            session_id=message.session_id,
            seq=found.seq,
            sender=message.sender,
            client_msg_id=message.client_msg_id,
            sent_at=found.sent_at,
            duplicate=True,
            level=found.level,
            urgency=urgency,
            previous_urgency=urgency,
        )
    sorting.todo = still_todo


def sessions_to_triage(sorting: Sorting, messages: Sequence[NewMessage]) -> set[uuid.UUID]:
    return {messages[i].session_id for i in sorting.todo if messages[i].sender == "visitor"}


def triage_inputs(
    sorting: Sorting,
    messages: Sequence[NewMessage],
    states: Mapping[uuid.UUID, SessionState],
    *,
    context_size: int,
) -> list[tuple[int, str, tuple[str, ...]]]:
    """(batch index, text, conversation so far) for each visitor message to store: each sees
    its session's recent texts plus the batch's earlier messages of the same session."""
    items: list[tuple[int, str, tuple[str, ...]]] = []
    running: dict[uuid.UUID, list[str]] = {}
    for i in sorting.todo:
        message = messages[i]
        if message.sender != "visitor":
            continue
        context = running.setdefault(
            message.session_id, list(states[message.session_id].context or [])
        )
        window = tuple(context[-context_size:]) if context_size else ()
        items.append((i, message.text, window))
        context.append(message.text)
    return items


def plan(
    sorting: Sorting,
    messages: Sequence[NewMessage],
    states: Mapping[uuid.UUID, SessionState],
    assessed: Mapping[int, tuple[TriageResult, float]],
    *,
    now: datetime,
) -> Plan:
    """Seqs, rows, urgency, audits and events for what is to be stored, then the answers for
    every message of the batch (in batch order)."""
    result = Plan()
    outcomes = list(sorting.outcomes)
    for i in sorting.todo:
        message = messages[i]
        state = states[message.session_id]
        state.last_seq += 1
        previous_urgency = state.urgency
        row = _row(message, state.last_seq, now)
        if message.sender == "visitor":
            _triaged(result, row, message, state, *assessed[i])
        result.rows.append(row)
        result.changed.add(message.session_id)
        if message.audit is not None:
            details = {**message.audit.details, "seq": state.last_seq}
            result.audits.append(
                Audit(
                    message.audit.actor_type,
                    message.audit.action,
                    message.session_id,
                    details,
                    actor_id=message.sender_id,
                )
            )
        result.events += events.message_stored(
            message.session_id, state.last_seq, message.sender, message.client_msg_id
        )
        outcomes[i] = StoredMessage(
            session_id=message.session_id,
            seq=state.last_seq,
            sender=message.sender,
            client_msg_id=message.client_msg_id,
            sent_at=now,
            duplicate=False,
            level=row["level"],
            urgency=state.urgency,
            previous_urgency=previous_urgency,
        )
    for i, first in sorting.followers:
        original = outcomes[first]
        outcomes[i] = (
            replace(original, duplicate=True) if isinstance(original, StoredMessage) else original
        )
    result.outcomes = [o for o in outcomes if o is not None]
    return result


def _row(message: NewMessage, seq: int, now: datetime) -> dict[str, Any]:
    return {
        "session_id": message.session_id,
        "seq": seq,
        "sender": message.sender,
        "sender_id": message.sender_id,
        "kind": message.kind,
        "client_msg_id": message.client_msg_id,
        "text": message.text,
        "sent_at": now,
        "level": None,
        "score": None,
        "signals": None,
        "model_version": None,
        "triage_ms": None,
    }


def _triaged(
    result: Plan,
    row: dict[str, Any],
    message: NewMessage,
    state: SessionState,
    assessment: TriageResult,
    elapsed_ms: float,
) -> None:
    """A visitor message: its triage on the row, the session's signals and urgency (max so
    far, never lowered here), and the audits and events of a rise or of a first message."""
    previous_urgency = state.urgency
    if state.context is not None:
        state.context.append(message.text)
    level = int(assessment.level)
    row.update(
        level=level,
        score=assessment.score,
        signals=list(assessment.signals),
        model_version=assessment.model_version,
        triage_ms=elapsed_ms,
    )
    for signal in assessment.signals:
        if signal not in state.signals and len(state.signals) < MAX_SESSION_SIGNALS:
            state.signals.append(signal)
            state.dirty = True
    seq = state.last_seq
    if level > state.urgency:
        state.urgency = level
        state.dirty = True
        details = {
            "from": previous_urgency,
            "to": level,
            "seq": seq,
            "signals": list(assessment.signals),
            "model_version": assessment.model_version,
        }
        result.audits.append(Audit("system", "urgency_raised", message.session_id, details))
        result.events += events.urgency_raised(
            message.session_id, urgency=level, previous=previous_urgency, seq=seq
        )
        if state.status == "waiting" and state.spoke:
            result.routable.add(message.session_id)
    if not state.spoke:
        # A hello alone is not a request for help; the first message is (SPEC §9).
        state.spoke = state.joined = True
        details = {"seq": seq, "status": state.status}
        result.audits.append(Audit("visitor", "visitor_spoke", message.session_id, details))
        if state.status == "waiting":
            result.events += events.joined_queue(message.session_id, state.urgency)
            result.routable.add(message.session_id)
