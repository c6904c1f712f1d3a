"""Pure triage library: text and conversation in, TriageResult out.

No database, socket, clock or network; imports nothing else from ``app``.
"""

from app.triage.types import Level, TriageResult

MODEL_VERSION = "placeholder-0"


def assess(text: str, context: tuple[str, ...] | list[str] = ()) -> TriageResult:
    """PLACEHOLDER until the triage engine lands (issue 2): keyword floor only."""
    lowered = " ".join([*context, text]).lower()
    level = Level.high if "kill myself" in lowered or "suicide" in lowered else Level.none
    return TriageResult(
        level=level, score=float(level) / 4, signals=(), model_version=MODEL_VERSION
    )


__all__ = ["MODEL_VERSION", "Level", "TriageResult", "assess"]
