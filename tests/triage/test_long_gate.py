"""The long-text agreement gate (``Heads.long_gate``): a text of LONG_WORDS+ words is rated high+
by the model only if the chat heads' P(level >= moderate) also reaches the gate.

The decision arithmetic is checked on exact tables; the engine on the packaged model with the
gate forced (so that nothing here depends on what the model says about a given message).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest

from app.triage import Engine, Level
from app.triage.engine import _model_level
from app.triage.heads import (
    CLASSES,
    LONG_WORDS,
    MODEL_DIR,
    Heads,
    HeadSet,
    ModelFormatError,
    feature_size,
    load,
    save,
)
from app.triage.learn import TrainingConfig

THRESHOLDS = (0.5, 0.3, 0.4, 0.2)


@pytest.mark.parametrize(
    ("probabilities", "agreed", "level"),
    [
        ((0.9, 0.8, 0.7, 0.6), True, Level.imminent),
        ((0.9, 0.8, 0.7, 0.6), False, Level.moderate),
        ((0.9, 0.8, 0.7, 0.1), True, Level.high),
        ((0.9, 0.8, 0.7, 0.1), False, Level.moderate),
        ((0.9, 0.2, 0.7, 0.6), True, Level.low),  # chained: high needs the moderate head
        ((0.9, 0.2, 0.7, 0.6), False, Level.low),
        ((0.1, 0.1, 0.1, 0.1), False, Level.none),
        ((0.9, 0.35, 0.1, 0.0), False, Level.moderate),
    ],
)
def test_without_agreement_the_model_stops_at_moderate(
    probabilities: tuple[float, float, float, float], agreed: bool, level: Level
) -> None:
    assert _model_level(np.array(probabilities, dtype=np.float32), THRESHOLDS, agreed) == level


def _constant_chat(heads: Heads, p_moderate: float) -> HeadSet:
    """Chat heads that give every row P(level >= moderate) = ``p_moderate``."""
    classes = np.array([0.5, 0.5 - p_moderate, p_moderate / 2, p_moderate / 4, p_moderate / 4])
    return HeadSet(
        weights=np.zeros((CLASSES, feature_size(len(heads.marks))), dtype=np.float32),
        bias=np.log(classes).astype(np.float32),
        sparse_index=np.zeros(0, dtype=np.int64),
        sparse_weights=np.zeros((0, CLASSES), dtype=np.float32),
        thresholds=heads.chat.thresholds,
    )


@pytest.mark.parametrize(
    ("gate", "p_moderate", "words", "agreed"),
    [
        (0.0, 0.001, LONG_WORDS + 10, True),  # off
        (0.01, 0.02, LONG_WORDS, True),
        (0.03, 0.02, LONG_WORDS, False),
        (0.03, 0.02, LONG_WORDS + 300, False),
        (0.03, 0.02, LONG_WORDS - 1, True),  # a chat line: its own heads decide
        (0.03, 0.03, LONG_WORDS, True),  # at the gate passes
        (0.5, 0.02, 3, True),
    ],
)
def test_only_long_texts_below_the_gate_are_held(
    engine: Engine, gate: float, p_moderate: float, words: int, agreed: bool
) -> None:
    heads = dataclasses.replace(
        engine.heads, chat=_constant_chat(engine.heads, p_moderate), long_gate=gate
    )
    rows = np.zeros((2, feature_size(len(heads.marks))), dtype=np.float32)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    assert heads.agreed(rows, [empty, empty], [words, 2]).tolist() == [agreed, True]


LONG_CALM = (
    "I have been thinking a lot about how tired I am of my job and how my manager keeps "
    "piling work on me every week, and honestly I just want to quit and move somewhere quiet "
    "by the sea where nobody emails me at midnight"
)
LONG_FLOOR = (
    "I took 30 pills about ten minutes ago and I am starting to feel dizzy and strange, I "
    "just wanted someone to know before it happens because I do not think I can stop it now "
    "and I am scared"
)
SHORT_LINES = ("I took 30 pills", "hi, is anyone there?", "I feel so alone lately")


def _gated(engine: Engine, gate: float) -> Engine:
    heads = dataclasses.replace(engine.heads, long_gate=gate)
    return Engine(heads, engine.rulebook, engine.languages, engine.encoder)


def test_the_texts_used_here_are_long_and_short_as_meant(engine: Engine) -> None:
    words = [reading.words for reading in engine.read_many([LONG_CALM, LONG_FLOOR])]
    assert min(words) >= LONG_WORDS
    assert all(reading.words < LONG_WORDS for reading in engine.read_many(list(SHORT_LINES)))


def test_a_gate_no_chat_head_can_reach_holds_every_long_text_below_high(engine: Engine) -> None:
    held = _gated(engine, 0.999999)
    result = held.assess(LONG_CALM, ("hi", "I need to vent"))
    assert result.level <= Level.moderate
    assert not any(signal in result.signals for signal in ("model:urgent", "model:imminent"))


def test_the_gate_never_lowers_a_rule_floor(engine: Engine) -> None:
    held = _gated(engine, 0.999999)
    assert held.assess(LONG_FLOOR).level == Level.imminent
    # nor what an earlier message established
    assert held.assess(LONG_CALM, ("I took 30 pills",)).level == Level.imminent


@pytest.mark.parametrize("context", [(), ("hey", "can I talk to someone")])
def test_the_gate_leaves_chat_lines_alone(engine: Engine, context: tuple[str, ...]) -> None:
    held = _gated(engine, 0.999999)
    off = _gated(engine, 0.0)
    for text in SHORT_LINES:
        assert held.assess(text, context).level == off.assess(text, context).level


def test_the_packaged_model_carries_the_gate_training_gives_it(engine: Engine) -> None:
    assert engine.heads.long_gate == TrainingConfig().long_gate
    assert engine.heads.document.get("long_gate", 0.0) == TrainingConfig().long_gate


def _packaged() -> tuple[dict[str, object], dict[str, np.ndarray]]:
    document = json.loads((MODEL_DIR / "model.json").read_text(encoding="utf-8"))
    with np.load(io.BytesIO((MODEL_DIR / "heads.npz").read_bytes()), allow_pickle=False) as f:
        return document, {name: f[name] for name in f.files}


@pytest.mark.parametrize(("stored", "read"), [(None, 0.0), (0.0, 0.0), (0.03, 0.03), (0, 0.0)])
def test_the_gate_is_read_from_model_json(
    tmp_path: Path, stored: float | None, read: float
) -> None:
    document, arrays = _packaged()
    document.pop("long_gate", None)
    if stored is not None:
        document["long_gate"] = stored
    save(document, arrays, tmp_path)
    assert load(tmp_path).long_gate == read


@pytest.mark.parametrize("stored", [-0.1, 1.0, 2, "0.03", None, [0.03]])
def test_a_malformed_gate_is_refused(tmp_path: Path, stored: object) -> None:
    document, arrays = _packaged()
    document["long_gate"] = stored
    save(document, arrays, tmp_path)
    with pytest.raises(ModelFormatError, match="long_gate"):
        load(tmp_path)
