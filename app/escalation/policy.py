"""What each urgency level obliges (SPEC §5): the handoff deadlines, from settings."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.config import Settings
from app.domain import session as session_states
from app.triage.types import Level


@dataclass(frozen=True, slots=True)
class Policy:
    """What each urgency level obliges (SPEC §5), from settings."""

    imminent_deadline_s: float
    high_deadline_s: float | None
    delivery_deadline_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            imminent_deadline_s=settings.handoff_deadline_s,
            high_deadline_s=settings.handoff_deadline_high_s if settings.escalate_high else None,
            delivery_deadline_s=settings.handoff_delivery_deadline_s,
        )

    @property
    def min_level(self) -> int:
        return int(Level.high) if self.high_deadline_s is not None else int(Level.imminent)

    def deadline_s(self, level: int) -> float | None:
        if level >= Level.imminent:
            return self.imminent_deadline_s
        if level >= Level.high:
            return self.high_deadline_s
        return None


def awaiting_answer(status: str, *, held: bool) -> bool:
    """Whether the handoff clock may act on a session: start it, or at its deadline hand off
    (otherwise it stands down). ``held``: a volunteer has an active assignment on it, which
    matters only during a warm transfer — until the other volunteer accepts, the first one is
    still in the chat.

    Pure, so that the shift simulator (``app.simulate``) decides with the server's own rule."""
    return status in session_states.UNANSWERED and not (
        status == session_states.SessionStatus.transferring and held
    )
