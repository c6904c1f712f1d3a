"""``train --check`` across CPU families: equal recipe, arrays within tolerance, same levels.

Each rule is checked both ways on the packaged model itself (cheap: no training) — a copy that
drifts a little must still reproduce, a copy that drifts past a tolerance or was built from
other data must not.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
import pytest

from app.triage import Engine, reproduce
from app.triage.corpus import Example
from app.triage.heads import MODEL_DIR, Heads, load


def packaged_arrays() -> dict[str, np.ndarray]:
    with np.load(io.BytesIO((MODEL_DIR / "heads.npz").read_bytes()), allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def nudged(heads: Heads, document: dict[str, Any]) -> Heads:
    return dataclasses.replace(heads, version="v2-000000000000", document=document)


def test_the_packaged_model_is_identical_to_itself() -> None:
    heads = load()
    arrays = packaged_arrays()
    assert reproduce.compare_arrays(arrays, arrays) == (0.0, [])
    assert reproduce.compare_documents(heads.document, dict(heads.document)) == []


@pytest.mark.parametrize(
    ("nudge", "reproduces"),
    [(0.5 * reproduce.WEIGHT_TOLERANCE, True), (2 * reproduce.WEIGHT_TOLERANCE, False)],
)
def test_weights_may_differ_only_within_the_tolerance(nudge: float, reproduces: bool) -> None:
    arrays = packaged_arrays()
    drifted = dict(arrays)
    drifted["chat_weights"] = arrays["chat_weights"] + np.float32(nudge)
    worst, problems = reproduce.compare_arrays(arrays, drifted)
    assert worst == pytest.approx(nudge, rel=1e-3)
    assert (not problems) is reproduces


def test_integer_arrays_must_be_equal() -> None:
    arrays = packaged_arrays()
    drifted = dict(arrays)
    drifted["bank_levels"] = np.roll(arrays["bank_levels"], 1)
    _, problems = reproduce.compare_arrays(arrays, drifted)
    assert problems == ["heads.npz: bank_levels differs"]


def test_other_data_or_recipe_never_reproduces() -> None:
    document = load().document
    other_data = {**document, "training": {**document["training"], "chat_train": {"rows": 1}}}
    assert reproduce.compare_documents(document, other_data) == ["model.json: training differs"]
    moved = {**document, "version": "v2-1", "thresholds": {"chat": [0, 0, 0, 0]}}
    assert reproduce.compare_documents(document, moved) == []


@pytest.mark.parametrize(
    ("shift", "reproduces"),
    [(0.5 * reproduce.THRESHOLD_TOLERANCE, True), (2 * reproduce.THRESHOLD_TOLERANCE, False)],
)
def test_thresholds_may_move_only_within_the_tolerance(shift: float, reproduces: bool) -> None:
    thresholds = load().document["thresholds"]
    moved = {name: [value + shift for value in values] for name, values in thresholds.items()}
    worst, problems = reproduce.compare_thresholds(thresholds, moved)
    assert worst == pytest.approx(shift)
    assert (not problems) is reproduces


def test_a_model_that_rates_dev_differently_does_not_reproduce(engine: Engine) -> None:
    """Thresholds within tolerance of each other but levels that disagree: caught by the dev
    comparison. Simulated by judging an engine against one whose heads say every message is
    urgent (the same arrays, only the levels' behaviour differs)."""
    heads = engine.heads
    arrays = packaged_arrays()
    dev = [
        Example("what time does the pharmacy close", (), frozenset({0})),
        Example("ok thanks, talk tomorrow", (), frozenset({0})),
    ]
    same = reproduce.compare(
        heads, arrays, nudged(heads, heads.document), arrays, (engine, engine), dev
    )
    assert same.reproduces
    assert same.level_agreement == 1.0
    alarmed_heads = dataclasses.replace(
        heads,
        chat=dataclasses.replace(heads.chat, thresholds=(0.0, 0.0, 0.0, 0.0)),
        version="v2-000000000000",
    )
    alarmed = Engine(alarmed_heads, engine.rulebook, engine.languages, engine.encoder)
    different = reproduce.compare(
        heads, arrays, nudged(heads, heads.document), arrays, (engine, alarmed), dev
    )
    assert different.level_agreement == 0.0
    assert not different.reproduces
