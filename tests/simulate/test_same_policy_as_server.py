"""The simulator runs the server's policy code, not a copy: a change to the policy (here: its
settings) moves the server's decisions and the simulator's results together."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatSession
from app.core.config import Settings
from app.core.db import utcnow
from app.escalation import policy as escalation_policy
from app.escalation import repository as escalation_repository
from app.escalation import service as escalation_service
from app.routing import assignments, dispatch
from app.simulate import engine, policies
from app.simulate.engine import Outcome, VolunteerPlan, simulate
from app.simulate.policies import POLICIES
from app.triage.types import Level
from tests.routing.helpers import add_session, hide_other_sessions
from tests.simulate.helpers import PROMPT_VOLUNTEERS, arrival, scenario

# A calm visitor who has waited 400 s and a moderate one who has waited 10 s. With the default
# ceiling (600 s: a level is worth 300 s) the moderate one goes first; with a 200 s ceiling
# (100 s a level) the calm one has aged past it.
CALM_WAITED_S, MODERATE_WAITED_S = 400.0, 10.0


async def _server_first(db: AsyncSession, settings: Settings) -> int:
    """The urgency of the session the server's queue offers first."""
    queue = await dispatch.waiting_sessions(db, settings)
    return queue[0].urgency


def _simulated_first(ceiling_s: float) -> int:
    """The same two people, one volunteer who comes on shift when they have waited that long:
    the urgency of the one the simulator's Beacon policy answers first."""
    shift = scenario(
        f"""
shift_hours = 1
[settings]
queue_wait_ceiling_s = {ceiling_s}
{PROMPT_VOLUNTEERS}
"""
    )
    arrivals = [
        arrival(0, 0.0, Level.none),
        arrival(1, CALM_WAITED_S - MODERATE_WAITED_S, Level.moderate),
    ]
    volunteer = VolunteerPlan(("en",), 1, ((CALM_WAITED_S, 3600.0),))
    result = simulate(shift, POLICIES["beacon"], seed=1, arrivals=arrivals, volunteers=[volunteer])
    answered = sorted(
        (v for v in result.visits if v.outcome is Outcome.answered),
        key=lambda v: v.arrival.at_s + v.wait_s,
    )
    return answered[0].arrival.urgency


@pytest.mark.parametrize(("ceiling_s", "first"), [(600.0, Level.moderate), (200.0, Level.none)])
async def test_the_aging_setting_moves_server_and_simulator_together(
    db: AsyncSession,
    settings_factory: Callable[..., Settings],
    ceiling_s: float,
    first: Level,
) -> None:
    await hide_other_sessions(db)
    now = utcnow()
    await add_session(db, urgency=Level.none, waited_s=CALM_WAITED_S, now=now)
    await add_session(db, urgency=Level.moderate, waited_s=MODERATE_WAITED_S, now=now)
    settings = settings_factory(queue_wait_ceiling_s=ceiling_s)
    assert await _server_first(db, settings) == first
    assert _simulated_first(ceiling_s) == first


def _handed_off(deadline_s: float) -> bool:
    """An imminent visitor; the only volunteer comes on 90 s later."""
    shift = scenario(
        f"""
shift_hours = 1
[handoff]
partner_available = 1
partner_response_s = 0
[settings]
handoff_deadline_s = {deadline_s}
{PROMPT_VOLUNTEERS}
"""
    )
    volunteer = VolunteerPlan(("en",), 3, ((90.0, 3600.0),))
    result = simulate(
        shift,
        POLICIES["beacon"],
        seed=1,
        arrivals=[arrival(0, 0.0, Level.imminent)],
        volunteers=[volunteer],
    )
    return result.visits[0].outcome is Outcome.handed_off


@pytest.mark.parametrize(("deadline_s", "handed_off"), [(60.0, True), (120.0, False)])
def test_the_handoff_deadline_moves_server_and_simulator_together(
    settings_factory: Callable[..., Settings], deadline_s: float, handed_off: bool
) -> None:
    # The server's escalation worker builds its clock from exactly this Policy.
    server = escalation_service.Policy.from_settings(
        settings_factory(handoff_deadline_s=deadline_s)
    )
    assert (server.deadline_s(Level.imminent) < 90.0) is handed_off
    assert _handed_off(deadline_s) is handed_off


@pytest.mark.parametrize(
    "status", ["waiting", "offered", "active", "transferring", "handed_off", "closed"]
)
async def test_the_servers_deadline_check_is_the_pure_rule(db: AsyncSession, status: str) -> None:
    """The escalation clock asks ``awaiting_answer`` of the locked row; the simulator asks it of a
    simulated session. Same answers, on real rows."""
    session_id = await add_session(db, urgency=Level.imminent, status=status)
    session = await db.get(ChatSession, session_id)
    assert session is not None
    assert await escalation_repository.is_unanswered(
        db, session
    ) is escalation_policy.awaiting_answer(status, held=False)


def test_the_decision_at_the_deadline_is_the_servers() -> None:
    assert escalation_repository.awaiting_answer is escalation_policy.awaiting_answer
    assert engine.awaiting_answer is escalation_policy.awaiting_answer
    assert escalation_policy.awaiting_answer("waiting", held=False)
    assert escalation_policy.awaiting_answer("offered", held=False)
    assert escalation_policy.awaiting_answer("transferring", held=False)
    assert not escalation_policy.awaiting_answer("transferring", held=True)
    assert not escalation_policy.awaiting_answer("active", held=True)


def test_the_routing_functions_are_the_servers() -> None:
    # Imported, not re-implemented: the engine plans with the dispatcher's own functions.
    assert engine.plan_offers is dispatch.plan_offers
    assert engine.slot_weight is assignments.slot_weight
    assert policies.priority_of is dispatch.priority_of
    assert engine.EscalationPolicy is escalation_service.Policy is escalation_policy.Policy


def test_an_imminent_visitor_takes_the_slots_the_server_would_give() -> None:
    shift = scenario(f"shift_hours = 1\n{PROMPT_VOLUNTEERS}")
    settings = shift.beacon_settings()
    weight = assignments.slot_weight(Level.imminent, settings.high_urgency_slots)
    assert weight == 2
    # Capacity 3: an imminent chat (2 slots) and one calm chat fit, a second calm one waits.
    result = simulate(
        shift,
        POLICIES["beacon"],
        seed=1,
        arrivals=[
            arrival(0, 0.0, Level.imminent, duration_s=1000.0),
            arrival(1, 1.0, Level.low, duration_s=1000.0),
            arrival(2, 2.0, Level.low, duration_s=100.0),
        ],
        volunteers=[VolunteerPlan(("en",), 3, ((0.0, 3600.0),))],
    )
    waits = [v.wait_s for v in result.visits]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == pytest.approx(1000.0 - 2.0)
