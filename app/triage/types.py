"""The triage contract (SPEC §2): five ordered urgency levels and the result of one assessment."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    none = 0
    low = 1
    moderate = 2
    high = 3
    imminent = 4


@dataclass(frozen=True, slots=True)
class TriageResult:
    level: Level
    score: float  # 0..1, the engine's confidence that the person needs urgent help
    signals: tuple[str, ...]  # stable machine-readable reasons, e.g. "method:overdose"
    model_version: str

    @property
    def level_value(self) -> int:
        return int(self.level)

    def as_dict(self) -> dict[str, object]:
        return {
            "level": self.level.name,
            "level_value": int(self.level),
            "score": self.score,
            "signals": list(self.signals),
            "model_version": self.model_version,
        }
