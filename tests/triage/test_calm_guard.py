"""The calm-neighbour guard (``Heads.calm_guard``): the model's high+ call is held at moderate
when enough of the message's nearest training examples are calm and close.

The vote is checked on exact banks (orthonormal examples, so a query's cosines are chosen
directly); the engine on the packaged model with a bank built around the test's own message,
so that nothing here depends on which examples a given message happens to be near. The packaged
model has the guard off (docs/triage.md, "Calm false alarms": no setting qualified on dev).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest

from app.triage import Engine, Level
from app.triage.corpus import Example
from app.triage.encoder import DIMENSIONS
from app.triage.heads import MODEL_DIR, CalmGuard, Heads, ModelFormatError, load, save
from app.triage.learn import Featurizer, TrainingConfig, _calm_bank
from tests.triage.conftest import trained_document

URGENT_ROWS = 2  # bank.embeddings: basis vectors 0, 1 (moderate+ examples)
CALM_ROWS = 3  # bank.calm: basis vectors 2, 3, 4


def _exact(heads: Heads, guard: CalmGuard) -> Heads:
    basis = np.eye(URGENT_ROWS + CALM_ROWS, DIMENSIONS, dtype=np.float32)
    neighbours = dataclasses.replace(
        heads.neighbours,
        embeddings=basis[:URGENT_ROWS],
        levels=np.array([3, 4], dtype=np.int8),
        categories=np.zeros(URGENT_ROWS, dtype=np.int16),
        calm=basis[URGENT_ROWS:],
    )
    return dataclasses.replace(heads, neighbours=neighbours, calm_guard=guard)


@pytest.mark.parametrize(
    ("guard", "urgent", "calm", "held"),
    [
        (CalmGuard(), (0.0, 0.0), (0.9, 0.9, 0.9), False),  # off
        (CalmGuard(1, 1, 0.7), (0.6, 0.0), (0.8, 0.0, 0.0), True),
        (CalmGuard(1, 1, 0.7), (0.6, 0.0), (0.65, 0.0, 0.0), False),  # calm but not close
        (CalmGuard(1, 1, 0.7), (0.9, 0.0), (0.8, 0.0, 0.0), False),  # an urgent one is nearer
        (CalmGuard(1, 1, 0.7), (0.8, 0.0), (0.8, 0.0, 0.0), False),  # a tie goes to urgent
        (CalmGuard(3, 2, 0.7), (0.7, 0.0), (0.8, 0.75, 0.1), True),
        (CalmGuard(3, 2, 0.7), (0.9, 0.85), (0.8, 0.75, 0.7), False),  # 1 calm of the 3
        (CalmGuard(3, 3, 0.5), (0.1, 0.0), (0.8, 0.7, 0.6), True),
        (CalmGuard(3, 3, 0.5), (0.1, 0.0), (0.8, 0.7, 0.4), False),
        (CalmGuard(9, 3, 0.5), (0.9, 0.9), (0.8, 0.7, 0.6), True),  # k beyond the bank
    ],
)
def test_the_vote_of_the_nearest_examples(
    engine: Engine,
    guard: CalmGuard,
    urgent: tuple[float, float],
    calm: tuple[float, float, float],
    held: bool,
) -> None:
    heads = _exact(engine.heads, guard)
    query = np.zeros((2, DIMENSIONS), dtype=np.float32)
    query[0, : URGENT_ROWS + CALM_ROWS] = (*urgent, *calm)
    assert heads.calm_neighbourhood(query).tolist() == [held, False]


URGENT_LINE = "I have been saving up my pills"  # no floor; the packaged model rates it high
FLOOR_LINE = "I took 30 pills"


def _guarded(engine: Engine, texts: list[str]) -> Engine:
    """An engine whose calm bank holds exactly ``texts``: a message among them is held."""
    calm = np.stack([reading.embedding for reading in engine.read_many(texts)])
    neighbours = dataclasses.replace(engine.heads.neighbours, calm=calm)
    heads = dataclasses.replace(
        engine.heads, neighbours=neighbours, calm_guard=CalmGuard(1, 1, 0.99)
    )
    return Engine(heads, engine.rulebook, engine.languages, engine.encoder)


def test_the_test_lines_are_what_they_are_meant_to_be(engine: Engine) -> None:
    reading = engine.read_many([URGENT_LINE])[0]
    assert reading.scan.floor == Level.none
    assert engine.assess(URGENT_LINE).level >= Level.high
    assert engine.read_many([FLOOR_LINE])[0].scan.floor == Level.imminent


def test_a_message_among_calm_examples_is_held_at_moderate(engine: Engine) -> None:
    result = _guarded(engine, [URGENT_LINE]).assess(URGENT_LINE)
    assert result.level == Level.moderate
    assert "guard:similar_calm" in result.signals
    assert "model:ideation" in result.signals
    assert not {"model:urgent", "model:imminent"} & set(result.signals)


@pytest.mark.parametrize(
    ("text", "context", "level"),
    [
        (FLOOR_LINE, (), Level.imminent),  # the message's own floor
        (URGENT_LINE, (FLOOR_LINE,), Level.imminent),  # what an earlier message established
    ],
)
def test_floors_and_the_conversation_still_raise_it(
    engine: Engine, text: str, context: tuple[str, ...], level: Level
) -> None:
    assert _guarded(engine, [URGENT_LINE, FLOOR_LINE]).assess(text, context).level == level


def test_a_message_far_from_the_calm_bank_is_not_held(engine: Engine) -> None:
    guarded = _guarded(engine, ["what time does the pharmacy open on sundays"])
    assert guarded.assess(URGENT_LINE).level == engine.assess(URGENT_LINE).level
    assert "guard:similar_calm" not in guarded.assess(URGENT_LINE).signals


def test_the_packaged_model_has_the_guard_training_gives_it(engine: Engine) -> None:
    """Off: the model, its version and its arrays are what they were before the guard."""
    assert engine.heads.calm_guard == TrainingConfig().calm_guard == CalmGuard()
    assert "calm_guard" not in engine.heads.document
    assert len(engine.heads.neighbours.calm) == 0
    with np.load(MODEL_DIR / "heads.npz", allow_pickle=False) as arrays:
        assert "calm_bank_embeddings" not in arrays.files


@pytest.mark.parametrize(
    ("guard", "recorded"),
    [
        (CalmGuard(), None),
        (CalmGuard(3, 2, 0.7), {"k": 3, "calm": 2, "similarity": 0.7}),
    ],
)
def test_training_records_the_guard_only_when_on(
    engine: Engine, guard: CalmGuard, recorded: dict[str, object] | None
) -> None:
    document = trained_document(engine, TrainingConfig(calm_guard=guard))
    assert document.get("calm_guard") == recorded


def test_the_calm_bank_holds_the_calm_rows_only(engine: Engine) -> None:
    featurizer = Featurizer(engine.encoder, engine.rulebook, engine.languages)
    rows = [
        Example(text="hello there", context=(), levels=frozenset({0})),
        Example(text=URGENT_LINE, context=(), levels=frozenset({3})),
        Example(text="rough day at work", context=(), levels=frozenset({1})),
    ]
    bank = _calm_bank(rows, featurizer)
    assert bank.shape == (2, DIMENSIONS)
    assert bank.dtype == np.float16
    expected = np.stack(
        [r.embedding for r in engine.read_many(["hello there", "rough day at work"])]
    )
    assert np.allclose(bank.astype(np.float32), expected, atol=1e-3)


def _packaged() -> tuple[dict[str, object], dict[str, np.ndarray]]:
    document = json.loads((MODEL_DIR / "model.json").read_text(encoding="utf-8"))
    with np.load(io.BytesIO((MODEL_DIR / "heads.npz").read_bytes()), allow_pickle=False) as f:
        return document, {name: f[name] for name in f.files}


def test_the_guard_is_read_from_the_model(tmp_path: Path) -> None:
    document, arrays = _packaged()
    document["calm_guard"] = {"k": 3, "calm": 2, "similarity": 0.7}
    arrays["calm_bank_embeddings"] = np.eye(4, DIMENSIONS, dtype=np.float16)
    save(document, arrays, tmp_path)
    heads = load(tmp_path)
    assert heads.calm_guard == CalmGuard(3, 2, 0.7)
    assert heads.neighbours.calm.shape == (4, DIMENSIONS)


@pytest.mark.parametrize(
    ("stored", "bank"),
    [
        ({"k": 3, "calm": 2, "similarity": 0.7}, None),  # no calm bank
        ({"k": 3, "calm": 2, "similarity": 0.7}, np.zeros((4, 7), dtype=np.float16)),
        ({"k": 3, "calm": 4, "similarity": 0.7}, np.zeros((4, DIMENSIONS), dtype=np.float16)),
        ({"k": 3, "calm": 0, "similarity": 0.7}, np.zeros((4, DIMENSIONS), dtype=np.float16)),
        ({"k": 3, "calm": 2, "similarity": 1.5}, np.zeros((4, DIMENSIONS), dtype=np.float16)),
        ({"k": 3, "calm": 2, "similarity": "0.7"}, np.zeros((4, DIMENSIONS), dtype=np.float16)),
        ({"k": 3, "calm": 2}, np.zeros((4, DIMENSIONS), dtype=np.float16)),
        ([3, 2, 0.7], np.zeros((4, DIMENSIONS), dtype=np.float16)),
    ],
)
def test_a_malformed_guard_is_refused(
    tmp_path: Path, stored: object, bank: np.ndarray | None
) -> None:
    document, arrays = _packaged()
    document["calm_guard"] = stored
    if bank is not None:
        arrays["calm_bank_embeddings"] = bank
    save(document, arrays, tmp_path)
    with pytest.raises(ModelFormatError, match="calm"):
        load(tmp_path)
