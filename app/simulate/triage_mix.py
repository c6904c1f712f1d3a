"""An urgency mix from real first messages: a CSV triaged by Beacon's own engine.

The engine is built here, for this one call (``app.triage.load_engine``), and batched through
``assess_many`` as the server's committer does; only the share of each level is kept, never the
text.
"""

from __future__ import annotations

import csv
from pathlib import Path

from app.simulate.scenario import LEVEL_NAMES, ScenarioError

_BATCH = 256


def read_texts(path: Path, text_column: str) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or text_column not in reader.fieldnames:
                raise ScenarioError(f"{str(path)!r} has no column {text_column!r}")
            texts = [row[text_column] for row in reader if (row.get(text_column) or "").strip()]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ScenarioError(f"cannot read urgency CSV {str(path)!r}: {exc}") from None
    if not texts:
        raise ScenarioError(f"{str(path)!r} has no first message to triage")
    return texts


def urgency_shares(path: Path, text_column: str = "text") -> list[float]:
    """Share of each level (none..imminent) among the CSV's messages, triaged one by one as
    first messages (no earlier context)."""
    texts = read_texts(path, text_column)
    from app.triage import load_engine  # the model loads only when a CSV asks for it

    engine = load_engine()
    counts = [0] * len(LEVEL_NAMES)
    for start in range(0, len(texts), _BATCH):
        batch = [(text, ()) for text in texts[start : start + _BATCH]]
        for result in engine.assess_many(batch):
            counts[int(result.level)] += 1
    return [c / len(texts) for c in counts]
