"""The escalation clock each instance runs (built in the lifespan, never at import).

Every state it acts on lives in the ``handoffs`` table, so any instance — or this one after a
restart — picks up where another left off; rows are claimed with ``FOR UPDATE SKIP LOCKED`` on
Postgres (SQLite: one process, its write lock serialises the claims). Each pass:

1. escalates urgent sessions nobody answers yet (safety message, supervisor alert, clock), and
   alerts the volunteer and supervisors of a held chat that turns imminent (in-chat safety
   message, no clock);
2. sends what visitors are owed (safety message, "connecting you", the hotline's number) through
   the chat committer — same seq/ack/replay path as every message, deduplicated by id;
3. hands off sessions whose clock ran out (or stands down if a volunteer answered);
4. delivers due webhook attempts, each in its own task so a slow partner blocks nobody.

It wakes on bus hints (an urgency rise, a session back in the queue, an escalation alert: a
handoff requested, a partner's callback) and otherwise every ``escalation_tick_s`` while any
handoff is open or anything is in flight; with none, every ``escalation_idle_tick_s`` (all new
work comes with a hint, so an idle server costs almost nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import httpx
import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import QUEUE_CHANNEL, Bus, Payload
from app.bus.events import (
    Queued,
    Resync,
    StatusChanged,
    SupervisorAlert,
    UrgencyRaised,
    decode,
)
from app.chat.committer import MessageCommitter, NewMessage
from app.chat.errors import SessionClosed, SessionNotFound, StoreUnavailable
from app.core.config import Settings
from app.core.db import transaction, utcnow
from app.core.metrics import Metrics
from app.core.worker import PeriodicWorker
from app.escalation import delivery, service
from app.escalation.breaker import BreakerState, CircuitBreaker
from app.escalation.partners import Partner, PartnersConfig, select_partners
from app.escalation.service import AttemptResult, Claimed, Owed, Policy
from app.escalation.templates import render
from app.routing.notices import SUPERVISORS_CHANNEL

log = structlog.get_logger(__name__)

# On stop (SIGTERM), how long a webhook already on its way may take to be answered and
# recorded before it is cancelled and its lease handed back to the other instances.
_DRAIN_S = 2.0
# Statuses a session enters when nobody is with it any more (``offered`` comes from ``waiting``).
_BECOMES_UNANSWERED = frozenset({"waiting", "transferring"})


class EscalationWorker(PeriodicWorker):
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        bus: Bus,
        committer: MessageCommitter,
        metrics: Metrics,
        partners: PartnersConfig | None,
        http: httpx.AsyncClient,
    ) -> None:
        super().__init__(
            "escalation",
            interval_s=settings.escalation_tick_s,
            bus=bus,
            wake_channels=(QUEUE_CHANNEL, SUPERVISORS_CHANNEL),
            retry_s=min(1.0, settings.escalation_tick_s),
        )
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.bus = bus
        self.committer = committer
        self.metrics = metrics
        self.partners = partners
        self.http = http
        self.policy = Policy.from_settings(settings)
        self.breakers: dict[str, CircuitBreaker] = {
            p.name: CircuitBreaker(
                threshold=settings.handoff_breaker_threshold,
                cooldown_s=settings.handoff_breaker_cooldown_s,
            )
            for p in (partners.partners if partners else [])
        }
        self._breaker_open = Gauge(
            "beacon_handoff_breaker_open",
            "1 while a partner's circuit breaker is open or half-open",
            ["partner"],
            registry=metrics.registry,
        )
        self._outcomes = Counter(
            "beacon_handoffs_total",
            "Handoffs by how they ended up (delivered, undeliverable, ...)",
            ["status"],
            registry=metrics.registry,
        )
        self._deliveries: dict[asyncio.Task[None], Claimed] = {}
        self._busy = True  # until a pass finds nothing open

    # -- lifecycle ---------------------------------------------------------------------------

    def wakes_on(self, payload: Payload) -> bool:
        """A resync; a change at or above the level that escalates; a session back in the queue
        (it may need a clock of its own again); an escalation alert (a handoff was requested or
        a partner called back, on any instance: a notice may be owed, a delivery due)."""
        match decode(payload):
            case Resync():
                return True
            case Queued(urgency=urgency) | UrgencyRaised(urgency=urgency):
                return isinstance(urgency, int) and urgency >= self.policy.min_level
            case StatusChanged(status=status):
                # Becoming unanswered again (released, requeued, cold-transferred); an offer
                # changes nothing (the session was unanswered already) and would only cost a pass.
                return status in _BECOMES_UNANSWERED
            case SupervisorAlert(kind="escalation"):
                return True
        return False

    def next_wait_s(self) -> float:
        if self._busy or self._deliveries:
            return self.interval_s
        return max(self.interval_s, self.settings.escalation_idle_tick_s)

    async def stop(self) -> None:
        """Stop the clock; let webhooks in flight finish briefly, then hand back the rest.

        A claimed delivery carries a lease (``next_attempt_at`` pushed past the request
        timeout) that keeps every other instance off it; left to expire, it would hold an
        urgent handoff back for that long after this process is gone."""
        await super().stop()
        if self._deliveries:
            await asyncio.wait(list(self._deliveries), timeout=_DRAIN_S)
        unfinished = [(task, claimed) for task, claimed in self._deliveries.items()]
        for task, _ in unfinished:
            task.cancel()
        for task, _ in unfinished:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._deliveries.clear()
        if unfinished:
            await self._release([claimed for _, claimed in unfinished])

    async def _release(self, claimed: list[Claimed]) -> None:
        try:
            async with transaction(self.sessionmaker) as db:
                released = await service.release_deliveries(db, claimed)
        except (DBAPIError, OSError) as exc:  # then the lease simply runs out
            log.warning("handoff_release_failed", error_type=type(exc).__name__)
            return
        for handoff_id in released:
            log.info("handoff_delivery_released", handoff_id=str(handoff_id))

    # -- one pass ----------------------------------------------------------------------------

    async def tick(self) -> None:
        self._busy = True  # a pass that fails part-way retries at the fast cadence
        handoffs_open = await self._escalate_new()
        work = await self._alert_in_chat()
        work += await self._send_owed()
        work += await self._start_due()
        work += await self._deliver_due()
        self._busy = handoffs_open or work > 0

    async def _escalate_new(self) -> bool:
        """Start the clocks that are owed; whether any handoff is open afterwards (the pass's
        cadence: open handoffs have deadlines and deliveries the clock must not miss)."""
        async with transaction(self.sessionmaker) as db:
            candidates = await service.sessions_to_escalate(db, self.policy)
            handoffs_open = await service.any_open_handoff(db)
        for row in candidates:
            try:
                async with transaction(self.sessionmaker) as db:
                    handoff = await service.escalate(
                        db,
                        self.bus,
                        session_id=row.id,
                        policy=self.policy,
                        partners=self.partners,
                    )
            except IntegrityError:
                continue  # another instance escalated it first
            if handoff is not None:
                handoffs_open = True
                log.info(
                    "escalation_started",
                    session_id=str(row.id),
                    handoff_id=str(handoff.id),
                    level=handoff.level,
                )
        return handoffs_open

    async def _alert_in_chat(self) -> int:
        async with transaction(self.sessionmaker) as db:
            candidates = await service.chats_turned_imminent(db)
        for session_id in candidates:
            async with transaction(self.sessionmaker) as db:
                record = await service.alert_in_chat(db, self.bus, session_id=session_id)
            if record is not None:
                log.info(
                    "escalation_in_chat", session_id=str(session_id), handoff_id=str(record.id)
                )
        return len(candidates)

    async def _send_owed(self) -> int:
        async with transaction(self.sessionmaker) as db:
            owed = await service.owed_messages(db)
        for item in owed:
            await self._send_one(item)
        return len(owed)

    async def _send_one(self, owed: Owed) -> None:
        partner = self._partner(owed.partner, owed.locale)
        rendered = render(
            owed.kind,
            owed.locale,
            partner_name=partner.name if partner else None,
            partner_phone=partner.phone if partner else None,
        )
        seq: int | None = None
        try:
            stored = await self.committer.submit(
                NewMessage(
                    session_id=owed.session_id,
                    sender="system",
                    text=rendered.text,
                    client_msg_id=owed.client_msg_id,
                    kind="safety",
                )
            )
            seq = stored.seq
        except (SessionClosed, SessionNotFound):
            pass  # the chat is over: nothing to tell, but record that we stopped trying
        except StoreUnavailable:
            return  # try again next pass (the client_msg_id keeps it single)
        async with transaction(self.sessionmaker) as db:
            await service.message_sent(db, owed, seq=seq)

    def _partner(self, name: str | None, locale: str | None) -> Partner | None:
        """The partner a visitor is told about: the handoff's, else the best for the locale."""
        if self.partners is None:
            return None
        chosen = self.partners.by_name(name)
        if chosen is not None:
            return chosen
        candidates = select_partners(self.partners, locale, int(self.policy.min_level))
        return candidates[0] if candidates else None

    async def _start_due(self) -> int:
        async with transaction(self.sessionmaker) as db:
            started = await service.due_handoffs(db, self.bus, self.settings)
        for handoff_id in started:
            log.info("handoff_due", handoff_id=str(handoff_id))
        return len(started)

    async def _deliver_due(self) -> int:
        lease_s = self.settings.handoff_request_timeout_s + 2.0
        try:
            async with transaction(self.sessionmaker) as db:
                claimed = await service.claim_deliveries(db, lease_s=lease_s)
        except DBAPIError as exc:
            log.warning("handoff_claim_failed", error_type=type(exc).__name__)
            return 1  # unknown: keep looking at the fast cadence
        for item in claimed:
            self._spawn(self._deliver(item), item)
        return len(claimed)

    def _spawn(self, coro: Awaitable[None], claimed: Claimed) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._deliveries[task] = claimed
        task.add_done_callback(lambda done: self._deliveries.pop(done, None))

    # -- one delivery attempt ----------------------------------------------------------------

    def _choose(self, claimed: Claimed) -> tuple[Partner | None, float]:
        """The first candidate whose breaker lets a call through; else how long until one will."""
        candidates = select_partners(self.partners, claimed.locale, claimed.level)
        waits: list[float] = []
        for partner in candidates:
            breaker = self.breakers[partner.name]
            if breaker.allow():
                return partner, 0.0
            waits.append(breaker.retry_after_s())
        return None, min(waits) if waits else self.settings.handoff_retry_max_s

    async def _deliver(self, claimed: Claimed) -> None:
        partner, wait_s = self._choose(claimed)
        if partner is None:
            result = AttemptResult(
                partner=None,
                outcome="no_partner" if self.partners is None else "breaker_open",
                status_code=None,
                duration_ms=0.0,
                error=None,
                started_at=utcnow(),
            )
        else:
            result = await delivery.post(
                self.http,
                partner,
                handoff_id=claimed.handoff_id,
                body=claimed.body,
                attempt=claimed.number,
                timeout_s=self.settings.handoff_request_timeout_s,
            )
            breaker = self.breakers[partner.name]
            if result.acknowledged:
                breaker.record_success()
            else:
                breaker.record_failure()
            self._breaker_open.labels(partner=partner.name).set(
                0 if breaker.state is BreakerState.closed else 1
            )
        self.metrics.handoff_attempts.labels(
            partner=result.partner or "-", outcome=result.outcome
        ).inc()
        retry_in = delivery.backoff_s(
            claimed.number,
            base_s=self.settings.handoff_retry_base_s,
            cap_s=self.settings.handoff_retry_max_s,
        )
        if partner is None:
            retry_in = max(retry_in, wait_s)
        log.info(
            "handoff_attempt",
            handoff_id=str(claimed.handoff_id),
            number=claimed.number,
            partner=result.partner,
            outcome=result.outcome,
            status_code=result.status_code,
        )
        await self._record(claimed, result, retry_in)

    async def _record(self, claimed: Claimed, result: AttemptResult, retry_in: float) -> None:
        # The attempt happened; its record must not be lost to a brief database hiccup.
        for pause in (0.0, 0.2, 1.0, 3.0):
            await asyncio.sleep(pause)
            try:
                async with transaction(self.sessionmaker) as db:
                    status = await service.record_attempt(
                        db, self.bus, claimed, result, retry_in_s=retry_in
                    )
            except DBAPIError as exc:
                log.warning("handoff_attempt_not_recorded", error_type=type(exc).__name__)
                continue
            if status in ("delivered", "undeliverable"):
                self._outcomes.labels(status=status).inc()
            self._wake.set()  # a notice may now be owed to the visitor
            return

    # -- for the REST/WS edges ---------------------------------------------------------------

    def breaker_states(self) -> dict[str, str]:
        return {name: breaker.state.value for name, breaker in self.breakers.items()}

    def observe_callback(self, status: str) -> None:
        self._outcomes.labels(status=status).inc()
        self._wake.set()
