"""Pure triage library: text and conversation in, TriageResult out (SPEC §2).

``assess(text, context)`` combines explainable rules (``app.triage.rules``) with a linear model
trained on labelled data (``app.triage.model``, stored as JSON in ``model/``). No database,
socket, clock or network; CPU only; deterministic for a given ``MODEL_VERSION``. Imports nothing
else from ``app``. See docs/triage.md.
"""

from collections.abc import Sequence
from functools import lru_cache

from app.triage.engine import Engine
from app.triage.model import load
from app.triage.types import Level, TriageResult

# Resolved on first use (module __getattr__ below) so that `beacon triage train` can run even
# when the packaged model is missing or being replaced.
MODEL_VERSION: str


@lru_cache(maxsize=1)
def _engine() -> Engine:
    return Engine(load())


def assess(text: str, context: Sequence[str] = ()) -> TriageResult:
    """Triage ``text``, the newest message, given the earlier messages of the conversation.

    ``context`` is oldest first. The conversation can only raise the result: a message is never
    rated below what an earlier message already established.
    """
    return _engine().assess(text, context)


def __getattr__(name: str) -> str:
    if name == "MODEL_VERSION":
        return _engine().model_version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MODEL_VERSION", "Level", "TriageResult", "assess"]
