"""The group commit's decisions (app/chat/commit_plan.py) with plain values: no database, no
triage engine. tests/chat/test_committer.py covers the same rules through real transactions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.bus import QUEUE_CHANNEL, session_channel
from app.chat import commit_plan
from app.chat.commit_plan import Existing, NewMessage, SessionState, StoredMessage
from app.chat.errors import SessionClosed, SessionNotFound
from app.triage import Level, TriageResult

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
TERMINAL = frozenset({"closed", "abandoned"})


def state(
    *, status: str = "waiting", last_seq: int = 0, urgency: int = 0, spoke: bool = True
) -> SessionState:
    return SessionState(status=status, last_seq=last_seq, urgency=urgency, signals=[], spoke=spoke)


def result(level: Level, *signals: str) -> TriageResult:
    return TriageResult(level=level, score=0.5, signals=signals, model_version="t1")


def visitor(session_id: uuid.UUID, text: str, client_msg_id: str | None = None) -> NewMessage:
    return NewMessage(
        session_id=session_id, sender="visitor", text=text, client_msg_id=client_msg_id
    )


def run(
    messages: list[NewMessage],
    states: dict[uuid.UUID, SessionState],
    levels: dict[int, TriageResult] | None = None,
) -> commit_plan.Plan:
    sorting = commit_plan.sort(messages, states, terminal=TERMINAL)
    assessed = {
        i: ((levels or {}).get(i, result(Level.none)), 1.0)
        for i, _, _ in commit_plan.triage_inputs(sorting, messages, states, context_size=10)
    }
    return commit_plan.plan(sorting, messages, states, assessed, now=NOW)


def test_seqs_are_gap_free_per_session_in_batch_order() -> None:
    states = {A: state(last_seq=4), B: state(last_seq=0)}
    messages = [visitor(A, "a1"), visitor(B, "b1"), visitor(A, "a2")]
    plan = run(messages, states)
    assert [(r["session_id"], r["seq"]) for r in plan.rows] == [(A, 5), (B, 1), (A, 6)]
    assert [o.seq for o in plan.outcomes if isinstance(o, StoredMessage)] == [5, 1, 6]
    assert (states[A].last_seq, states[B].last_seq) == (6, 1)
    assert plan.changed == {A, B}


def test_missing_and_closed_sessions_are_refused_the_rest_is_stored() -> None:
    states = {A: state(status="closed"), B: state()}
    ghost = uuid.uuid4()
    plan = run([visitor(A, "x"), visitor(ghost, "y"), visitor(B, "z")], states)
    assert isinstance(plan.outcomes[0], SessionClosed)
    assert isinstance(plan.outcomes[1], SessionNotFound)
    assert isinstance(plan.outcomes[2], StoredMessage)
    assert plan.outcomes[2].seq == 1
    assert len(plan.rows) == 1


def test_resend_within_the_batch_folds_onto_its_first_copy() -> None:
    states = {A: state()}
    messages = [visitor(A, "hi", "c1"), visitor(A, "hi", "c1"), visitor(A, "other", "c2")]
    sorting = commit_plan.sort(messages, states, terminal=TERMINAL)
    assert sorting.todo == [0, 2]
    assert sorting.followers == [(1, 0)]
    assert sorting.keys == [(A, "visitor", "c1"), (A, "visitor", "c2")]
    plan = run(messages, states)
    first, again, other = plan.outcomes
    assert isinstance(first, StoredMessage)
    assert isinstance(again, StoredMessage)
    assert (first.seq, first.duplicate) == (1, False)
    assert (again.seq, again.duplicate) == (1, True)
    assert isinstance(other, StoredMessage)
    assert other.seq == 2
    assert len(plan.rows) == 2


def test_same_client_msg_id_from_another_sender_is_not_a_resend() -> None:
    states = {A: state()}
    messages = [
        visitor(A, "hi", "c1"),
        NewMessage(session_id=A, sender="volunteer", text="hello", client_msg_id="c1"),
    ]
    assert commit_plan.sort(messages, states, terminal=TERMINAL).followers == []


def test_resend_of_a_stored_message_gets_the_original_seq() -> None:
    states = {A: state(last_seq=7, urgency=2)}
    messages = [visitor(A, "again", "c1"), visitor(A, "new", "c2")]
    sorting = commit_plan.sort(messages, states, terminal=TERMINAL)
    earlier = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    existing: dict[tuple[uuid.UUID, str, str | None], Existing] = {
        (A, "visitor", "c1"): Existing(seq=3, sent_at=earlier, level=1)
    }
    commit_plan.answer_resends(sorting, messages, states, existing)
    assert sorting.todo == [1]
    plan = commit_plan.plan(sorting, messages, states, {1: (result(Level.none), 1.0)}, now=NOW)
    resent, new = plan.outcomes
    assert isinstance(resent, StoredMessage)
    assert isinstance(new, StoredMessage)
    assert (resent.seq, resent.duplicate, resent.sent_at, resent.level) == (3, True, earlier, 1)
    assert (resent.urgency, resent.previous_urgency) == (2, 2)
    assert new.seq == 8


def test_urgency_only_rises_and_each_rise_is_audited_and_announced() -> None:
    states = {A: state(urgency=1)}
    messages = [visitor(A, "a"), visitor(A, "b"), visitor(A, "c")]
    levels = {0: result(Level.high, "plan"), 1: result(Level.low), 2: result(Level.imminent)}
    plan = run(messages, states, levels)
    assert states[A].urgency == int(Level.imminent)
    assert states[A].dirty
    assert [o.urgency for o in plan.outcomes if isinstance(o, StoredMessage)] == [3, 3, 4]
    rises = [a for a in plan.audits if a.action == "urgency_raised"]
    assert [(a.details["from"], a.details["to"], a.details["seq"]) for a in rises] == [
        (1, 3, 1),
        (3, 4, 3),
    ]
    urgency_events = [p for c, p in plan.events if p["kind"] == "urgency" and c == QUEUE_CHANNEL]
    assert [(p["previous"], p["urgency"]) for p in urgency_events] == [(1, 3), (3, 4)]
    assert plan.rows[0]["signals"] == ["plan"]
    assert states[A].signals == ["plan"]


def test_first_message_joins_the_queue_once() -> None:
    states = {A: state(spoke=False), B: state(status="active", spoke=False)}
    plan = run([visitor(A, "help"), visitor(A, "please"), visitor(B, "hey")], states)
    spoke = [a for a in plan.audits if a.action == "visitor_spoke"]
    assert [(a.session_id, a.actor_type, a.details) for a in spoke] == [
        (A, "visitor", {"seq": 1, "status": "waiting"}),
        (B, "visitor", {"seq": 1, "status": "active"}),
    ]
    queued = [(c, p["session_id"]) for c, p in plan.events if p["kind"] == "queued"]
    assert queued == [(QUEUE_CHANNEL, str(A))]  # an active session is not in the queue
    assert states[A].joined
    assert states[B].joined


def test_every_stored_message_is_announced_on_its_session_in_order() -> None:
    states = {A: state()}
    system = NewMessage(session_id=A, sender="system", text="safety", kind="safety")
    plan = run([visitor(A, "x", "c1"), system], states)
    hints = [(c, p["seq"], p["sender"]) for c, p in plan.events if p["kind"] == "message"]
    assert hints == [(session_channel(A), 1, "visitor"), (session_channel(A), 2, "system")]
    assert plan.rows[1]["level"] is None
    assert plan.rows[1]["kind"] == "safety"
    assert plan.audits == []


def test_triage_sees_the_conversation_so_far_including_the_batch() -> None:
    states = {A: state(last_seq=2)}
    states[A].context = ["earlier"]
    messages = [
        visitor(A, "one"),
        NewMessage(session_id=A, sender="volunteer", text="reply"),
        visitor(A, "two"),
    ]
    sorting = commit_plan.sort(messages, states, terminal=TERMINAL)
    inputs = commit_plan.triage_inputs(sorting, messages, states, context_size=2)
    assert inputs == [(0, "one", ("earlier",)), (2, "two", ("earlier", "one"))]
    assert commit_plan.sessions_to_triage(sorting, messages) == {A}
    plan = commit_plan.plan(
        sorting, messages, states, {i: (result(Level.none), 1.0) for i, _, _ in inputs}, now=NOW
    )
    assert plan.contexts(states) == {A: (5, ["earlier", "one", "two"])}


def test_a_message_s_own_audit_commits_with_it_once_and_carries_its_seq() -> None:
    noted = commit_plan.AuditOnStore("resource_sent", "volunteer", {"resource_id": "r1"})
    card = NewMessage(
        session_id=A,
        sender="volunteer",
        text="{}",
        client_msg_id="k1",
        sender_id="v-7",
        kind="resource",
        audit=noted,
    )
    states = {A: state(last_seq=2)}
    plan = run([card, card], states)  # the second copy is a resend within the batch
    own = [a for a in plan.audits if a.action == "resource_sent"]
    assert [(a.actor_type, a.actor_id, a.session_id, a.details) for a in own] == [
        ("volunteer", "v-7", A, {"resource_id": "r1", "seq": 3})
    ]
    # Refused messages record nothing.
    closed = {A: state(status="closed")}
    assert run([card], closed).audits == []
