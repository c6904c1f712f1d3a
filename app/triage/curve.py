"""``beacon triage curve``: the dev split's trade-off between urgent recall and calm false alarms.

The chat heads are fitted once on train (as ``beacon triage train`` fits them; the long-post
heads stay the packaged model's, so long texts are rated as the packaged model rates them);
then, for each urgent recall target, thresholds are picked as training picks them and the whole
engine (floors, guards, context) rates dev twice: with thresholds picked on all of dev (what
training does, so recall is met by construction) and with thresholds picked on one half of dev
and applied to the other half (an honest estimate of what a target buys on rows it was not
picked on). The sealed test splits are never read here: the curve is how a target is chosen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from app.triage import corpus, metrics
from app.triage.corpus import Example
from app.triage.engine import Engine
from app.triage.heads import Heads, HeadSet
from app.triage.learn import (
    Featurizer,
    TrainingConfig,
    _with_thresholds,
    fit_chat_heads,
    head_probabilities,
    pick_thresholds,
)

_FIGURES = ("urgent_recall", "urgent_precision", "imminent_recall", "calm_high_rate", "exact")


def _half(example: Example) -> int:
    return int(corpus.text_id(example.text, example.context), 16) % 2


def _figures(examples: Sequence[Example], predicted: Sequence[int]) -> dict[str, Any]:
    report = metrics.report(examples, predicted, {})
    overall = report["overall"]
    out: dict[str, Any] = {name: overall[name]["value"] for name in _FIGURES}
    out["calm_rated_high"] = overall["calm_rated_high"]
    out["under_triaged_urgent"] = overall["under_triaged_urgent"]
    for lang, figures in report["by_language"].items():
        out[f"calm_high_rate_{lang}"] = figures["calm_high_rate"]["value"]
        out[f"urgent_recall_{lang}"] = figures["urgent_recall"]["value"]
    return out


def points(
    chat_train: Sequence[Example],
    chat_dev: Sequence[Example],
    heads: Heads,
    engine_for: Callable[[Heads], Engine],
    featurizer: Featurizer,
    targets: Sequence[float],
    config: TrainingConfig | None = None,
) -> list[dict[str, Any]]:
    """One point per urgent recall target (the third of ``config.chat_recall``)."""
    config = config or TrainingConfig()
    grams = config.char_grams
    chat = fit_chat_heads(featurizer.features(chat_train, grams), chat_train, config)
    probabilities = head_probabilities(chat, featurizer.features(chat_dev, grams))
    halves = np.array([_half(example) for example in chat_dev])
    items = [(example.text, example.context) for example in chat_dev]

    def rate(head_set: HeadSet, index: Sequence[int]) -> list[int]:
        engine = engine_for(dataclasses.replace(heads, chat=head_set, char_grams=grams))
        return [int(r.level) for r in engine.assess_many([items[i] for i in index])]

    out = []
    for target in targets:
        recall = (*config.chat_recall[:2], target, config.chat_recall[3])
        thresholds = pick_thresholds(probabilities, chat_dev, recall)
        in_sample = rate(_with_thresholds(chat, thresholds), range(len(chat_dev)))
        crossed = [0] * len(chat_dev)
        for side in (0, 1):
            picked = [e for e, h in zip(chat_dev, halves, strict=True) if h == side]
            other = [int(i) for i in np.flatnonzero(halves != side)]
            half_thresholds = pick_thresholds(probabilities[halves == side], picked, recall)
            for i, level in zip(
                other, rate(_with_thresholds(chat, half_thresholds), other), strict=True
            ):
                crossed[i] = level
        out.append(
            {
                "urgent_recall_target": target,
                "thresholds": thresholds,
                "dev": _figures(chat_dev, in_sample),
                "dev_split_half": _figures(chat_dev, crossed),
            }
        )
    return out
