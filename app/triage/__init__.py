"""Pure triage library: text and conversation in, TriageResult out (SPEC §2).

``assess(text, context)`` and ``assess_many(items)`` combine the rule tables (``tables/*.toml``:
high-precision floors and false-alarm guards, read by ``rulebook``) with heads trained over a
multilingual sentence encoder (``encoder``, ``heads``, stored in ``model/``). No database,
socket, clock or network; CPU only; deterministic for a given model version. Imports nothing
else from ``app``. See docs/triage.md.

``load_engine()`` builds an engine from the packaged files. ``default_engine()`` is the one
engine a process shares: the model is immutable data (like a loaded module), about 150 MB with
the encoder, and costs a second to load, so the server's lifespan, the CLI and the tests all
reuse it rather than build one per app.
"""

from collections.abc import Sequence
from functools import lru_cache

from app.triage.encoder import Encoder
from app.triage.engine import Engine
from app.triage.heads import load as load_heads
from app.triage.language import load as load_languages
from app.triage.rulebook import load as load_rulebook
from app.triage.types import Level, TriageResult


def load_engine() -> Engine:
    return Engine(load_heads(), load_rulebook(), load_languages(), Encoder())


@lru_cache(maxsize=1)
def default_engine() -> Engine:
    return load_engine()


def assess(text: str, context: Sequence[str] = ()) -> TriageResult:
    """Triage ``text``, the newest message, given the earlier messages (oldest first).

    The conversation can only raise the result: a message is never rated below what an earlier
    message already established.
    """
    return default_engine().assess(text, context)


def assess_many(items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
    """Triage a batch of ``(text, context)`` with one encoder call (see Engine.assess_many)."""
    return default_engine().assess_many(items)


def __getattr__(name: str) -> str:
    if name == "MODEL_VERSION":
        return default_engine().model_version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MODEL_VERSION",
    "Engine",
    "Level",
    "TriageResult",
    "assess",
    "assess_many",
    "default_engine",
    "load_engine",
]
