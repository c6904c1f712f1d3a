"""The JSON model: pure-Python scoring equals scikit-learn, training is reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.triage.datasets import case_examples, load_cases
from app.triage.features import tokens
from app.triage.model import MODEL_PATH, LinearModel, ModelFormatError, dumps, load
from app.triage.rules import scan
from app.triage.training import TrainingConfig, _Corpus, _Fitted, featurize, train


def test_pure_python_scores_equal_scikit_learn() -> None:
    examples = case_examples(load_cases())
    corpus = _Corpus([example.text for example in examples])
    rows = np.arange(0, len(examples), 2)
    held_out = np.arange(1, len(examples), 2)
    fitted = _Fitted(corpus, rows, examples, TrainingConfig())
    document = {"format": 1, "thresholds": {"urgent": 0, "ideation": 0}, "model_version": "t"}
    document.update(fitted.document())
    model = LinearModel(json.loads(dumps(document)))
    urgent, ideation = fitted.decisions(held_out)
    for position, row in enumerate(held_out):
        text = examples[row].text
        scores = model.decision(tokens(scan(text).text), featurize(text).rule)
        # weights are stored with 6 significant digits
        assert scores.urgent == pytest.approx(urgent[position], abs=1e-4)
        assert scores.ideation == pytest.approx(ideation[position], abs=1e-4)


def test_training_is_deterministic() -> None:
    examples = case_examples(load_cases())
    config = TrainingConfig(inner_repeats=1)
    assert dumps(train(examples, config)) == dumps(train(examples, config))


def test_packaged_model_loads_and_round_trips() -> None:
    model = load()
    document = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert dumps(document) == MODEL_PATH.read_text(encoding="utf-8")
    assert model.version == document["model_version"]
    assert document["training"]["sources"]["cssrs"] == 710
    assert model.thresholds.urgent < 1e6


def test_malformed_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError):
        LinearModel({"format": 99})
    with pytest.raises(ModelFormatError):
        LinearModel({"format": 1, "intercepts": {}})
    broken = tmp_path / "model.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelFormatError):
        load(broken)
    with pytest.raises(ModelFormatError):
        load(tmp_path / "missing.json")
