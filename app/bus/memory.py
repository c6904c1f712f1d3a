"""In-process bus: the single-process equivalent of LISTEN/NOTIFY (embedded SQLite, tests)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.bus.base import Bus, Event, Notification, encode_payload


class InProcessBus(Bus):
    """Delivers within this process only; correct for one instance, never for several."""

    async def publish_many(
        self, events: Sequence[Event], *, db: AsyncSession | None = None
    ) -> None:
        if db is None:
            self._check(events)
            self._deliver(events)
            return
        self.stage(events, db)

    def stage(self, events: Sequence[Event], db: AsyncSession) -> Notification | None:
        self._check(events)
        self._deliver_on_commit(db, events)
        return None

    def stage_detached(self, events: Sequence[Event]) -> Notification | None:
        self._check(events)
        return None

    @staticmethod
    def _check(events: Sequence[Event]) -> None:
        for _, payload in events:
            encode_payload(payload)  # the same size rule as Postgres, so nothing works only here
