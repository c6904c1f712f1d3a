"""The state tables on their own: no database, no sockets, no await."""

from __future__ import annotations

from enum import StrEnum

import pytest

from app.domain import assignment, handoff, session
from app.domain.assignment import ASSIGNMENT, AssignmentStatus
from app.domain.handoff import HANDOFF, HandoffStatus
from app.domain.machine import IllegalTransition, StateMachine
from app.domain.session import SESSION, SessionStatus

S = SessionStatus
H = HandoffStatus


def test_every_state_is_in_its_table() -> None:
    for machine, states in (
        (SESSION, SessionStatus),
        (HANDOFF, HandoffStatus),
        (ASSIGNMENT, AssignmentStatus),
    ):
        assert machine.states == frozenset(states)
        assert machine.initial in machine.states


def test_a_table_naming_an_unknown_state_or_a_self_move_is_refused() -> None:
    class Light(StrEnum):
        red = "red"
        green = "green"

    with pytest.raises(ValueError, match="unknown states"):
        StateMachine("light", Light.red, {Light.red: frozenset({Light.green})})
    with pytest.raises(ValueError, match="itself"):
        StateMachine(
            "light", Light.red, {Light.red: frozenset({Light.red}), Light.green: frozenset()}
        )


def test_closed_is_final_and_abandoned_only_reopens() -> None:
    assert SESSION.terminal == {S.closed}
    assert SESSION.moves[S.abandoned] == {S.waiting}
    assert {S.closed, S.abandoned} == session.TERMINAL


def test_the_named_session_sets_say_what_the_code_means() -> None:
    assert SESSION.states - {S.closed, S.abandoned} == session.UNFINISHED
    assert {S.waiting, S.offered, S.active, S.transferring} == session.LIVE
    assert {S.closed, S.abandoned, S.handed_off} == session.ENDED
    assert {S.waiting, S.active} == session.ABANDONABLE
    assert not session.HELD & {S.waiting, S.offered}
    # Every live session may be closed by wrap-up, every unfinished one by its visitor.
    assert all(SESSION.allows(s, S.closed) for s in session.UNFINISHED)
    # A visitor may be given up on only where the table allows it.
    assert SESSION.sources(S.abandoned) == session.ABANDONABLE


def test_routing_moves_are_in_the_table() -> None:
    for source, target in [
        (S.waiting, S.offered),
        (S.offered, S.waiting),
        (S.offered, S.active),
        (S.waiting, S.active),
        (S.active, S.transferring),
        (S.transferring, S.active),
        (S.transferring, S.waiting),
        (S.active, S.waiting),
        (S.handed_off, S.waiting),
    ]:
        assert SESSION.allows(source, target), (source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.closed, S.waiting),
        (S.handed_off, S.offered),
        (S.abandoned, S.active),
        (S.offered, S.abandoned),
    ],
)
def test_moves_outside_the_table_raise(source: SessionStatus, target: SessionStatus) -> None:
    assert not SESSION.allows(source, target)
    with pytest.raises(IllegalTransition):
        SESSION.check([source], target)


def test_check_returns_the_sources_as_states() -> None:
    assert SESSION.check(["waiting", "active"], S.abandoned) == {S.waiting, S.active}
    with pytest.raises(IllegalTransition):
        SESSION.check(["nonsense"], S.waiting)


def test_a_partner_may_move_a_handoff_only_as_its_callbacks_always_could() -> None:
    assert HANDOFF.sources(H.accepted) == {H.delivering, H.delivered, H.undeliverable}
    assert HANDOFF.sources(H.connected) == {
        H.delivering,
        H.delivered,
        H.accepted,
        H.undeliverable,
    }
    assert HANDOFF.sources(H.failed) == {H.delivering, H.delivered, H.accepted}
    assert {H.accepted, H.connected, H.failed} == handoff.CALLBACK
    assert {H.scheduled, H.delivering, H.delivered} == handoff.OPEN
    assert HANDOFF.sources(H.cancelled) == {H.scheduled}
    assert H.not_needed in HANDOFF.terminal


def test_an_assignment_holds_slots_only_while_open() -> None:
    assert {AssignmentStatus.offered, AssignmentStatus.active} == assignment.HOLDING
    assert ASSIGNMENT.terminal == ASSIGNMENT.states - assignment.HOLDING
    assert ASSIGNMENT.allows(AssignmentStatus.offered, AssignmentStatus.active)
    assert not ASSIGNMENT.allows(AssignmentStatus.active, AssignmentStatus.offered)
