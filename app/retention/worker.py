"""Running the purge: one run = every batch until nothing is left, then one audit event.

``run_purge`` is the boundary (it owns the transactions); the lifespan runs it periodically on
every instance through :class:`RetentionWorker`, and ``beacon retention purge`` runs it once.
Instances need no coordination: the statements are idempotent and skip rows another instance is
purging, so a second instance only finds less to do.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import transaction
from app.core.metrics import Metrics
from app.core.worker import PeriodicWorker
from app.retention import service
from app.retention.service import PurgeCounts

log = structlog.get_logger(__name__)

# The first scheduled run waits a random part of this (or of the interval, if shorter), so that
# instances started together do not all purge at the same moment, nor during their start-up.
_FIRST_RUN_SPREAD_S: Final = 300.0

_Step = Callable[..., Awaitable[int]]
_STEPS: Final[tuple[tuple[str, _Step], ...]] = (
    ("messages", service.purge_message_texts),
    ("notes", service.purge_disposition_notes),
    ("triage_requests", service.delete_triage_requests),
    ("whispers", service.purge_whisper_texts),
    ("contacts", service.purge_contacts),
    ("handoff_payloads", service.purge_handoff_payloads),
)


@dataclass(frozen=True, slots=True)
class PurgeReport:
    cutoff: datetime
    retention_days: int
    counts: PurgeCounts
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "retention_days": self.retention_days,
            "cutoff": self.cutoff.isoformat(),
            **self.counts.as_dict(),
        }


async def run_purge(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    retention_days: int,
    batch_size: int,
    trigger: str,
    dry_run: bool = False,
    now: datetime | None = None,
    on_batch: Callable[[str, int], None] | None = None,
) -> PurgeReport:
    """Purge everything past the retention period (or, with ``dry_run``, count it)."""
    cutoff = service.cutoff_for(retention_days, now)
    if dry_run:
        async with sessionmaker() as db:
            counts = await service.due(db, cutoff=cutoff)
        return PurgeReport(cutoff, retention_days, counts, dry_run=True)
    counts = PurgeCounts()
    try:
        for kind, step in _STEPS:
            while True:
                async with transaction(sessionmaker) as db:
                    done = await step(db, cutoff=cutoff, limit=batch_size)
                counts = counts + PurgeCounts(**{kind: done})
                if on_batch is not None and done:
                    on_batch(kind, done)
                if done < batch_size:
                    break
    except Exception:
        # What was purged stays purged; the trail says the run stopped short (and how far it got).
        with contextlib.suppress(Exception):
            async with transaction(sessionmaker) as db:
                service.record_run(
                    db,
                    counts=counts,
                    cutoff=cutoff,
                    retention_days=retention_days,
                    trigger=trigger,
                    completed=False,
                )
        raise
    async with transaction(sessionmaker) as db:
        service.record_run(
            db, counts=counts, cutoff=cutoff, retention_days=retention_days, trigger=trigger
        )
    return PurgeReport(cutoff, retention_days, counts, dry_run=False)


class RetentionWorker(PeriodicWorker):
    """The periodic purge each instance runs (built in the lifespan; ``retention_interval_s`` 0
    turns it off, leaving ``beacon retention purge`` from cron)."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        super().__init__(
            "retention", interval_s=settings.retention_interval_s, failure_event="retention_failed"
        )
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._purged = Counter(
            "beacon_retention_purged_total",
            "Items purged by retention (message texts, wrap-up notes, partner request rows)",
            ["kind"],
            registry=metrics.registry,
        )
        self._last_success = Gauge(
            "beacon_retention_last_success_timestamp_seconds",
            "Unix time of this instance's last completed retention run",
            registry=metrics.registry,
        )

    def enabled(self) -> bool:
        return self.settings.retention_interval_s > 0

    def first_delay_s(self) -> float:
        # Instances started together do not all purge at the same moment.
        # SystemRandom leaves the process-wide generator alone (app/escalation/delivery.py).
        return random.SystemRandom().uniform(0, min(self.interval_s, _FIRST_RUN_SPREAD_S))

    async def tick(self) -> None:
        await self.run_once()

    async def run_once(self) -> PurgeReport:
        report = await run_purge(
            self.sessionmaker,
            retention_days=self.settings.retention_days,
            batch_size=self.settings.retention_batch_size,
            trigger="schedule",
            on_batch=lambda kind, done: self._purged.labels(kind=kind).inc(done),
        )
        self._last_success.set(time.time())
        log.info("retention_purged", **report.counts.as_dict(), cutoff=report.cutoff.isoformat())
        return report
