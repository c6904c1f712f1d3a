"""In-process bus: the single-process equivalent of LISTEN/NOTIFY (embedded SQLite, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.bus.base import Bus, Event, encode_payload

_PENDING_KEY: Final = "beacon.bus.pending"
_LISTENING_KEY: Final = "beacon.bus.listening"


class InProcessBus(Bus):
    """Delivers within this process only; correct for one instance, never for several."""

    async def publish_many(
        self, events: Sequence[Event], *, db: AsyncSession | None = None
    ) -> None:
        for _, payload in events:
            encode_payload(payload)  # the same size rule as Postgres, so nothing works only here
        if db is None:
            self._deliver(events)
            return
        sync_session = db.sync_session
        if not sync_session.info.get(_LISTENING_KEY):
            # Listeners stay for the session's (short) life; they act only on pending events.
            sync_session.info[_LISTENING_KEY] = True
            event.listen(sync_session, "after_commit", self._after_commit)
            event.listen(sync_session, "after_rollback", self._after_rollback)
        sync_session.info.setdefault(_PENDING_KEY, []).extend(events)

    def _deliver(self, events: Sequence[Event]) -> None:
        for channel, payload in events:
            self._dispatch(channel, payload)

    def _after_commit(self, session: Session, *_: Any) -> None:
        pending: list[Event] = session.info.pop(_PENDING_KEY, [])
        self._deliver(pending)

    def _after_rollback(self, session: Session, *_: Any) -> None:
        session.info.pop(_PENDING_KEY, None)
