"""The discrete-event core: simulated seconds, no I/O, no wall clock, no shared state.

Each routing pass does what ``app.routing.dispatch.route_once`` does, with the same pure
functions: the waiting queue in the policy's order (Beacon's is ``priority_of``), the offers from
``plan_offers`` (eligibility, least loaded and longest idle, ``slot_weight``), and for Beacon the
handoff clock of ``app.escalation.policy`` (``Policy`` deadlines, ``awaiting_answer``). What
the server does with rows — taking slots, expiring offers, topping up a clamped urgent chat,
remembering refusals — is mirrored here on plain objects.

A pass runs after every change that can free or need a volunteer (the server's bus wake-up), and
at the moments a session becomes eligible for more volunteers (language fallback, a refusal's
cool-down ending), which the server's one-second tick would catch.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from app.core.config import Settings
from app.escalation.policy import Policy as EscalationPolicy
from app.escalation.policy import awaiting_answer
from app.routing.assignments import slot_weight
from app.routing.dispatch import Candidate, Waiting, plan_offers, session_language
from app.simulate.policies import QueuePolicy
from app.simulate.scenario import LEVEL_NAMES, Scenario, Shift

# Simulated time zero. Any fixed instant works: the policy only ever compares times.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Arrival:
    """A visitor's first message, and what will happen to them (drawn up front, so that every
    policy in a run sees exactly the same people)."""

    index: int
    at_s: float
    urgency: int
    language: str | None
    duration_s: float
    patience_s: float  # math.inf: never leaves


@dataclass(frozen=True, slots=True)
class VolunteerPlan:
    languages: tuple[str, ...]
    capacity: int
    on_shift: tuple[tuple[float, float], ...]  # [start_s, end_s) spans


def _rng(seed: int, stream: str) -> random.Random:
    # A string seed is hashed with SHA-512, not Python's per-process hash: stable across runs.
    return random.Random(f"beacon-sim:{seed}:{stream}")


def _duration(rng: random.Random, mean_s: float, scenario: Scenario) -> float:
    if scenario.duration_min.distribution == "lognormal":
        sigma2 = math.log(1.0 + scenario.duration_min.cv**2)
        return rng.lognormvariate(math.log(mean_s) - sigma2 / 2.0, math.sqrt(sigma2))
    return rng.expovariate(1.0 / mean_s)


def generate_arrivals(
    scenario: Scenario, seed: int, urgency_shares: list[float] | None = None
) -> list[Arrival]:
    """Poisson arrivals at each hour's rate; then each visitor's urgency, language, chat length
    and patience, from streams of their own (changing the mix does not move the arrival times)."""
    times = _rng(seed, "arrivals")
    traits = _rng(seed, "traits")
    shares = urgency_shares or scenario.urgency.shares()
    languages = list(scenario.languages)
    language_weights = [scenario.languages[name] for name in languages]
    shift_s = scenario.shift_hours * 3600.0
    out: list[Arrival] = []
    for hour in range(math.ceil(scenario.shift_hours)):
        rate = scenario.rate_per_s(hour)
        if rate <= 0:
            continue
        t, end = hour * 3600.0, min((hour + 1) * 3600.0, shift_s)
        while True:
            t += times.expovariate(rate)  # memoryless: restarting at the hour is exact
            if t >= end:
                break
            level = traits.choices(range(len(LEVEL_NAMES)), weights=shares)[0]
            language = traits.choices(languages, weights=language_weights)[0]
            patience_mean = scenario.patience_min.mean_s(level)
            out.append(
                Arrival(
                    index=len(out),
                    at_s=t,
                    urgency=level,
                    language=session_language(language),
                    duration_s=_duration(traits, scenario.duration_min.mean_s(level), scenario),
                    patience_s=traits.expovariate(1.0 / patience_mean)
                    if patience_mean > 0
                    else math.inf,
                )
            )
    return out


def volunteer_plans(scenario: Scenario) -> list[VolunteerPlan]:
    shift_s = scenario.shift_hours * 3600.0

    def span(shift: Shift) -> tuple[float, float]:
        end = shift_s if shift.end_h is None else shift.end_h * 3600.0
        return shift.start_h * 3600.0, end

    return [
        VolunteerPlan(tuple(shift.languages), shift.capacity, (span(shift),))
        for shift in scenario.volunteers
        for _ in range(shift.count)
    ]


def staffing_plans(
    per_hour: list[int], template: list[VolunteerPlan], shift_hours: float
) -> list[VolunteerPlan]:
    """Volunteers for a count per hour: person ``i`` is on in every hour that needs more than
    ``i`` people (so the same people stay on, as a rota would have it), with the languages and
    capacity of the template's person ``i`` (repeating the template when it is shorter)."""
    shift_s = shift_hours * 3600.0
    plans: list[VolunteerPlan] = []
    for i in range(max(per_hour, default=0)):
        spans: list[tuple[float, float]] = []
        for hour, count in enumerate(per_hour):
            if count <= i:
                continue
            start, end = hour * 3600.0, min((hour + 1) * 3600.0, shift_s)
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        model = template[i % len(template)]
        plans.append(VolunteerPlan(model.languages, model.capacity, tuple(spans)))
    return plans


class Outcome(IntEnum):
    answered = 0  # a volunteer accepted
    abandoned = 1  # the visitor left before anyone answered
    handed_off = 2  # a hotline partner accepted the handoff
    unserved = 3  # still waiting when the simulation stopped


@dataclass(frozen=True, slots=True)
class VisitResult:
    arrival: Arrival
    outcome: Outcome
    wait_s: float  # to the outcome (for `answered`: until the volunteer accepted)
    offers: int


@dataclass(frozen=True, slots=True)
class RunResult:
    policy: str
    visits: list[VisitResult]
    # Slot-seconds held (chats and pending offers) over slot-seconds on shift, and the share of
    # on-shift time a volunteer held at least one chat.
    utilisation: float
    busy_share: float
    volunteer_hours: float


class _Kind(IntEnum):
    shift_on = 0
    shift_off = 1
    arrive = 2
    accept = 3
    decline = 4
    expire = 5
    end = 6
    abandon = 7
    handoff_due = 8
    partner_reply = 9
    wake = 10


@dataclass(slots=True, eq=False)
class _Volunteer:
    id: uuid.UUID
    languages: list[str]
    capacity: int
    load: int = 0
    idle_since_s: float = 0.0
    on: bool = False
    chats: list[_Visit] = field(default_factory=list)
    last_s: float = 0.0
    slot_s: float = 0.0
    busy_s: float = 0.0
    on_s: float = 0.0


@dataclass(slots=True, eq=False)
class _Visit:
    arrival: Arrival
    waiting: Waiting
    status: str = "waiting"
    volunteer: _Volunteer | None = None
    slots: int = 0
    token: int = 0  # bumped to void a pending offer reply
    offers: int = 0
    outcome: Outcome | None = None
    outcome_s: float = 0.0


class _Run:
    def __init__(
        self,
        scenario: Scenario,
        policy: QueuePolicy,
        settings: Settings,
        arrivals: list[Arrival],
        volunteers: list[VolunteerPlan],
        seed: int,
    ) -> None:
        self.scenario = scenario
        self.policy = policy
        self.settings = settings
        self.escalation = EscalationPolicy.from_settings(settings)
        self.rng = _rng(seed, "offers")  # one stream for every policy: fewer chance differences
        self.shift_s = scenario.shift_hours * 3600.0
        self.stop_s = self.shift_s + scenario.drain_hours * 3600.0
        self.heap: list[tuple[float, int, _Kind, object, int]] = []
        self.seq = 0
        self.visits: list[_Visit] = []
        self.waiting: dict[uuid.UUID, _Visit] = {}
        self.refusals: dict[tuple[uuid.UUID, uuid.UUID], float] = {}
        self.volunteers: dict[uuid.UUID, _Volunteer] = {}
        for i, plan in enumerate(volunteers):
            vol = _Volunteer(
                id=uuid.UUID(int=(1 << 64) + i),
                languages=list(plan.languages),
                capacity=plan.capacity,
            )
            self.volunteers[vol.id] = vol
            for start, end in plan.on_shift:
                self._at(start, _Kind.shift_on, vol)
                self._at(end, _Kind.shift_off, vol)
        for arrival in arrivals:
            self._at(arrival.at_s, _Kind.arrive, arrival)

    # -- the event queue ---------------------------------------------------------------------

    def _at(self, t: float, kind: _Kind, subject: object, token: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, subject, token))

    def run(self) -> RunResult:
        handlers = {
            _Kind.shift_on: self._shift_on,
            _Kind.shift_off: self._shift_off,
            _Kind.arrive: self._arrive,
            _Kind.accept: self._accept,
            _Kind.decline: self._refused,
            _Kind.expire: self._refused,
            _Kind.end: self._end,
            _Kind.abandon: self._abandon,
            _Kind.handoff_due: self._handoff_due,
            _Kind.partner_reply: self._partner_reply,
            _Kind.wake: self._wake,
        }
        while self.heap:
            t, _, kind, subject, token = heapq.heappop(self.heap)
            if t > self.stop_s:
                break
            if handlers[kind](t, subject, token):
                self._route(t)
        for vol in self.volunteers.values():
            self._account(vol, self.shift_s)
        return self._result()

    # -- volunteers --------------------------------------------------------------------------

    def _account(self, vol: _Volunteer, t: float) -> None:
        """Accrue the time since the last change, counting only time on shift."""
        if vol.on:
            span = max(0.0, min(t, self.shift_s) - min(vol.last_s, self.shift_s))
            vol.on_s += span
            vol.slot_s += span * vol.load
            vol.busy_s += span if vol.load > 0 else 0.0
        vol.last_s = t

    def _shift_on(self, t: float, subject: object, token: int) -> bool:
        assert isinstance(subject, _Volunteer)
        self._account(subject, t)
        subject.on, subject.idle_since_s = True, t
        return True

    def _shift_off(self, t: float, subject: object, token: int) -> bool:
        # Off shift: no new offers; chats already open run to their end.
        assert isinstance(subject, _Volunteer)
        self._account(subject, t)
        subject.on = False
        return False

    def _take(self, vol: _Volunteer, visit: _Visit, want: int, t: float) -> int:
        """As ``assignments._take_slots``: as many of ``want`` as are free, never past capacity."""
        slots = min(want, vol.capacity - vol.load)
        if slots > 0:
            self._account(vol, t)
            vol.load += slots
            visit.slots += slots
        return max(slots, 0)

    def _release(self, visit: _Visit, t: float) -> None:
        vol = visit.volunteer
        assert vol is not None
        self._account(vol, t)
        vol.load = max(0, vol.load - visit.slots)
        vol.idle_since_s = t
        vol.chats.remove(visit)
        visit.volunteer, visit.slots = None, 0
        # As ``route_once``'s top-up: a clamped urgent chat takes the freed slots first.
        for held in vol.chats:
            if held.status == "active":
                want = slot_weight(held.arrival.urgency, self.settings.high_urgency_slots)
                if held.slots < want:
                    self._take(vol, held, want - held.slots, t)

    # -- routing -----------------------------------------------------------------------------

    def _route(self, t: float) -> None:
        if not self.waiting:
            return
        now = EPOCH + timedelta(seconds=t)
        free = [
            Candidate(
                id=v.id,
                languages=v.languages,
                free=v.capacity - v.load,
                load=v.load,
                idle_since=EPOCH + timedelta(seconds=v.idle_since_s),
            )
            for v in self.volunteers.values()
            if v.on and v.load < v.capacity
        ]
        if not free:
            return
        cooldown = self.settings.offer_decline_cooldown_s
        refused = {pair for pair, at in self.refusals.items() if t - at <= cooldown}
        queue = self.policy.order([v.waiting for v in self.waiting.values()], now, self.settings)
        for session, candidate in plan_offers(queue, free, refused, now, self.settings):
            self._offer(self.waiting[session.id], self.volunteers[candidate.id], t)

    def _offer(self, visit: _Visit, vol: _Volunteer, t: float) -> None:
        want = slot_weight(visit.arrival.urgency, self.settings.high_urgency_slots)
        if not self._take(vol, visit, want, t):
            return
        del self.waiting[visit.waiting.id]
        visit.status, visit.volunteer = "offered", vol
        vol.chats.append(visit)
        visit.offers += 1
        visit.token += 1
        offers, timeout = self.scenario.offers, self.settings.offer_timeout_s
        u = self.rng.random()
        if u < offers.no_answer:
            self._at(t + timeout, _Kind.expire, visit, visit.token)
        elif u < offers.no_answer + offers.decline:
            after = self.rng.expovariate(1.0 / offers.decline_s) if offers.decline_s > 0 else 0.0
            self._at(t + min(after, timeout), _Kind.decline, visit, visit.token)
        else:
            after = self.rng.expovariate(1.0 / offers.accept_s) if offers.accept_s > 0 else 0.0
            kind = _Kind.accept if after < timeout else _Kind.expire
            self._at(t + min(after, timeout), kind, visit, visit.token)

    def _withdraw(self, visit: _Visit, t: float) -> None:
        """An offer that ends without an accept: the slots come back, the reply is void."""
        self._release(visit, t)
        visit.token += 1

    def _accept(self, t: float, subject: object, token: int) -> bool:
        assert isinstance(subject, _Visit)
        if token != subject.token or subject.status != "offered":
            return False
        subject.status = "active"
        self._finish(subject, Outcome.answered, t)
        self._at(t + subject.arrival.duration_s, _Kind.end, subject)
        return False  # nothing was freed

    def _refused(self, t: float, subject: object, token: int) -> bool:
        """Declined, or no answer within the offer timeout: back to the queue at its old place
        (``waiting_since`` is kept), not offered to that volunteer again for the cool-down."""
        assert isinstance(subject, _Visit)
        if token != subject.token or subject.status != "offered":
            return False
        assert subject.volunteer is not None
        self.refusals[(subject.waiting.id, subject.volunteer.id)] = t
        self._withdraw(subject, t)
        subject.status = "waiting"
        self.waiting[subject.waiting.id] = subject
        self._at(t + self.settings.offer_decline_cooldown_s + 1e-6, _Kind.wake, None)
        return True

    def _end(self, t: float, subject: object, token: int) -> bool:
        assert isinstance(subject, _Visit)
        subject.status = "closed"
        self._release(subject, t)
        return True

    # -- visitors ----------------------------------------------------------------------------

    def _arrive(self, t: float, subject: object, token: int) -> bool:
        assert isinstance(subject, Arrival)
        arrival = subject
        waiting = Waiting(
            id=uuid.UUID(int=arrival.index + 1),
            urgency=arrival.urgency,
            waiting_since=EPOCH + timedelta(seconds=t),
            language=arrival.language,
            signals=[],
        )
        visit = _Visit(arrival=arrival, waiting=waiting)
        self.visits.append(visit)
        self.waiting[waiting.id] = visit
        if math.isfinite(arrival.patience_s):
            self._at(t + arrival.patience_s, _Kind.abandon, visit)
        if self.policy.escalates and self.scenario.handoff.partner:
            deadline = self.escalation.deadline_s(arrival.urgency)
            if deadline is not None:
                self._at(t + deadline, _Kind.handoff_due, visit)
        if arrival.language is not None:
            self._at(t + self.settings.language_fallback_s + 1e-6, _Kind.wake, None)
        return True

    def _finish(self, visit: _Visit, outcome: Outcome, t: float) -> None:
        visit.outcome, visit.outcome_s = outcome, t

    def _leave(self, visit: _Visit, outcome: Outcome, t: float) -> bool:
        """The visitor leaves the queue (gave up, or a partner took them). True if an offer's
        slots came back."""
        freed = visit.status == "offered"
        if freed:
            self._withdraw(visit, t)
        else:
            del self.waiting[visit.waiting.id]
        visit.status = outcome.name
        self._finish(visit, outcome, t)
        return freed

    def _abandon(self, t: float, subject: object, token: int) -> bool:
        assert isinstance(subject, _Visit)
        if subject.status not in ("waiting", "offered"):
            return False
        return self._leave(subject, Outcome.abandoned, t)

    def _handoff_due(self, t: float, subject: object, token: int) -> bool:
        """The deadline: hand off if nobody answered (the server's rule), else stand down."""
        assert isinstance(subject, _Visit)
        if awaiting_answer(subject.status, held=subject.status == "active"):
            handoff = self.scenario.handoff
            delay = (
                self.rng.expovariate(1.0 / handoff.partner_response_s)
                if handoff.partner_response_s > 0
                else 0.0
            )
            accepted = int(self.rng.random() < handoff.partner_available)
            self._at(t + delay, _Kind.partner_reply, subject, accepted)
        return False

    def _partner_reply(self, t: float, subject: object, token: int) -> bool:
        # A failed handoff leaves the person in the queue at their place; a volunteer who took
        # the chat in the meantime keeps it (the model does not end a chat a person is in).
        assert isinstance(subject, _Visit)
        if not token or subject.status not in ("waiting", "offered"):
            return False
        return self._leave(subject, Outcome.handed_off, t)

    def _wake(self, t: float, subject: object, token: int) -> bool:
        return True

    # -- results -----------------------------------------------------------------------------

    def _result(self) -> RunResult:
        visits = []
        for visit in self.visits:
            outcome = Outcome.unserved if visit.outcome is None else visit.outcome
            end = self.stop_s if visit.outcome is None else visit.outcome_s
            visits.append(
                VisitResult(visit.arrival, outcome, end - visit.arrival.at_s, visit.offers)
            )
        on = sum(v.on_s for v in self.volunteers.values())
        slots = sum(v.on_s * v.capacity for v in self.volunteers.values())
        return RunResult(
            policy=self.policy.name,
            visits=visits,
            utilisation=sum(v.slot_s for v in self.volunteers.values()) / slots if slots else 0.0,
            busy_share=sum(v.busy_s for v in self.volunteers.values()) / on if on else 0.0,
            volunteer_hours=on / 3600.0,
        )


def simulate(
    scenario: Scenario,
    policy: QueuePolicy,
    *,
    seed: int,
    arrivals: list[Arrival],
    volunteers: list[VolunteerPlan] | None = None,
    settings: Settings | None = None,
) -> RunResult:
    """One policy over one shift. Deterministic for (scenario, policy, seed, arrivals)."""
    return _Run(
        scenario,
        policy,
        settings or scenario.beacon_settings(),
        arrivals,
        volunteer_plans(scenario) if volunteers is None else volunteers,
        seed,
    ).run()
