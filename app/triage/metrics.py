"""Quality figures for a labelled set, each with a bootstrap 95 % interval.

Under-triage of an urgent person is the failure that matters most (urgent recall, imminent
recall), false alarms on calm messages come next (calm rated high or above). Intervals come from
resampling the rows (fixed seed, so a report is reproducible).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.triage.corpus import Example

BOOTSTRAP_SAMPLES = 1000
_Metric = Callable[[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]], float]


def _ratio(numerator: object, denominator: object) -> float:
    top, bottom = float(numerator), float(denominator)  # type: ignore[arg-type]
    return top / bottom if bottom else float("nan")


def urgent_recall(
    low: NDArray[np.int64], high: NDArray[np.int64], pred: NDArray[np.int64]
) -> float:
    urgent = low >= 3
    return _ratio(np.sum(urgent & (pred >= 3)), np.sum(urgent))


def urgent_precision(
    low: NDArray[np.int64], high: NDArray[np.int64], pred: NDArray[np.int64]
) -> float:
    called = pred >= 3
    return _ratio(np.sum(called & (low >= 3)), np.sum(called))


def imminent_recall(
    low: NDArray[np.int64], high: NDArray[np.int64], pred: NDArray[np.int64]
) -> float:
    imminent = low == 4
    return _ratio(np.sum(imminent & (pred == 4)), np.sum(imminent))


def calm_high_rate(
    low: NDArray[np.int64], high: NDArray[np.int64], pred: NDArray[np.int64]
) -> float:
    calm = high <= 1
    return _ratio(np.sum(calm & (pred >= 3)), np.sum(calm))


def exact(low: NDArray[np.int64], high: NDArray[np.int64], pred: NDArray[np.int64]) -> float:
    return _ratio(np.sum((pred >= low) & (pred <= high)), len(pred))


def quadratic_kappa(truth: Sequence[int], predicted: Sequence[int], classes: int = 4) -> float:
    observed = np.zeros((classes, classes))
    for t, p in zip(truth, predicted, strict=True):
        observed[t, p] += 1
    if observed.sum() == 0:
        return float("nan")
    weights = np.array([[(i - j) ** 2 for j in range(classes)] for i in range(classes)])
    weights = weights / (classes - 1) ** 2
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    denominator = (weights * expected).sum()
    return float(1 - (weights * observed).sum() / denominator) if denominator else float("nan")


def macro_f1(truth: Sequence[int], predicted: Sequence[int]) -> float:
    scores = []
    for label in sorted(set(truth)):
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def hit_rate(low: NDArray[np.int64], high: NDArray[np.int64], pred: NDArray[np.int64]) -> float:
    """Rows judged on the right side of their label: urgent rows called high+, moderate rows
    called moderate+, calm rows not called high+."""
    hit = np.where(low >= 3, pred >= 3, np.where(low == 2, pred >= 2, pred < 3))
    return float(np.mean(hit)) if len(hit) else float("nan")


METRICS: dict[str, _Metric] = {
    "urgent_recall": urgent_recall,
    "urgent_precision": urgent_precision,
    "imminent_recall": imminent_recall,
    "calm_high_rate": calm_high_rate,
    "exact": exact,
}


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": _round(self.value),
            "ci95": [_round(self.low), _round(self.high)],
            "n": self.n,
        }


def _round(value: float) -> float:
    return round(value, 4) if value == value else value


def bootstrap(
    metric: _Metric,
    low: NDArray[np.int64],
    high: NDArray[np.int64],
    pred: NDArray[np.int64],
    seed: int = 20261201,
) -> Estimate:
    value = metric(low, high, pred)
    if len(pred) == 0:
        return Estimate(value, value, value, 0)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(BOOTSTRAP_SAMPLES):
        index = rng.integers(0, len(pred), len(pred))
        sample = metric(low[index], high[index], pred[index])
        if sample == sample:
            samples.append(sample)
    if not samples:
        return Estimate(value, value, value, len(pred))
    lower, upper = np.percentile(samples, [2.5, 97.5])
    return Estimate(value, float(lower), float(upper), len(pred))


def _arrays(
    examples: Sequence[Example], predicted: Sequence[int]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    low = np.array([min(e.levels) for e in examples], dtype=np.int64)
    high = np.array([max(e.levels) for e in examples], dtype=np.int64)
    return low, high, np.array(predicted, dtype=np.int64)


def figures(examples: Sequence[Example], predicted: Sequence[int]) -> dict[str, Estimate]:
    low, high, pred = _arrays(examples, predicted)
    return {name: bootstrap(metric, low, high, pred) for name, metric in METRICS.items()}


def report(
    examples: Sequence[Example],
    predicted: Sequence[int],
    extra: Mapping[str, Sequence[int | None]] | None = None,
) -> dict[str, Any]:
    """Everything ``beacon triage eval`` prints for a labelled set."""
    low, high, pred = _arrays(examples, predicted)
    confusion = np.zeros((5, 5), dtype=int)
    for truth, guess in zip(low, pred, strict=True):
        confusion[truth, guess] += 1
    overall: dict[str, Any] = {
        name: estimate.as_dict() for name, estimate in figures(examples, predicted).items()
    }
    urgent = low >= 3
    calm = high <= 1
    overall["under_triaged_urgent"] = int(np.sum(urgent & (pred < 3)))
    overall["calm_rated_high"] = int(np.sum(calm & (pred >= 3)))
    overall["quadratic_kappa"] = _round(
        quadratic_kappa([_four(e) for e in examples], [min(int(p), 3) for p in pred])
    )
    overall["macro_f1"] = _round(
        macro_f1([_four(e) for e in examples], [min(int(p), 3) for p in pred])
    )
    result: dict[str, Any] = {
        "rows": len(examples),
        "overall": overall,
        "confusion": {"rows_truth_cols_predicted": confusion.tolist()},
        "by_language": _grouped(examples, predicted, lambda e: e.lang),
        "by_category": _grouped(examples, predicted, lambda e: e.category or "-", brief=True),
    }
    if extra:
        result["compare"] = {}
        for name, values in extra.items():
            keep = [i for i, value in enumerate(values) if value is not None]
            if not keep:
                continue
            subset = [examples[i] for i in keep]
            guesses = [int(values[i]) for i in keep]  # type: ignore[arg-type]
            result["compare"][name] = {
                "rows": len(keep),
                **{k: v.as_dict() for k, v in figures(subset, guesses).items()},
            }
    return result


def _four(example: Example) -> int:
    """4 classes for kappa/F1 as in the C-SSRS mapping: calm, moderate, high, imminent→high."""
    return (
        min(min(example.levels), 3)
        if min(example.levels) >= 2
        else 1
        if min(example.levels) == 1
        else 0
    )


def _grouped(
    examples: Sequence[Example],
    predicted: Sequence[int],
    key: Callable[[Example], str],
    brief: bool = False,
) -> dict[str, Any]:
    groups: dict[str, list[int]] = defaultdict(list)
    for position, example in enumerate(examples):
        groups[key(example)].append(position)
    out: dict[str, Any] = {}
    for name in sorted(groups):
        members = groups[name]
        subset = [examples[i] for i in members]
        guesses = [predicted[i] for i in members]
        entry: dict[str, Any] = {"rows": len(members)}
        if brief:
            estimate = bootstrap(hit_rate, *_arrays(subset, guesses))
            entry["hit"] = _round(estimate.value)
            entry["hit_ci95"] = [_round(estimate.low), _round(estimate.high)]
        else:
            entry.update(
                {
                    metric: estimate.as_dict()
                    for metric, estimate in figures(subset, guesses).items()
                }
            )
        out[name] = entry
    return out
