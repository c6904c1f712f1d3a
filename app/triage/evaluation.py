"""Quality figures for labelled CSVs: ours, beside the LLM labels when the file has them.

Classes for kappa, F1 and the confusion matrix (the data README's mapping, 5-6 read as imminent):

    severity 0 → none/low    1-2 → moderate    3-4 → high    5-6 → imminent
    level none|low → none/low, moderate, high, imminent

"Urgent" is severity ≥ 3 (or level ≥ high); an urgent row is caught when rated high or imminent.
On data the packaged model was trained on, honest figures need ``--cv K``: the model is re-trained
inside each of K stratified, seeded folds with :func:`app.triage.training.train` and the held-out
fold is scored by the real rules + model path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.triage.datasets import (
    CLASS_NAMES,
    LLM_COLUMNS,
    DataError,
    Example,
    level_class,
    open_csv,
    parse_level,
    severity_class,
    text_id,
)
from app.triage.types import Level, TriageResult

if TYPE_CHECKING:
    from app.triage.training import TrainingConfig

Assess = Callable[[str, Sequence[str]], TriageResult]


@dataclass(frozen=True, slots=True)
class LabeledRow:
    text: str
    context: tuple[str, ...]
    truth: int  # evaluation class 0-3
    urgent: bool
    ideation: bool
    llm: dict[str, int | None]


@dataclass(frozen=True, slots=True)
class LabeledFile:
    rows: list[LabeledRow]
    label_column: str
    label_kind: str  # "severity" or "level"
    llm_columns: tuple[str, ...]


def _context(raw: str, where: str) -> tuple[str, ...]:
    if not raw.strip():
        return ()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: context is not a JSON list of strings: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DataError(f"{where}: context is not a JSON list of strings")
    return tuple(value)


def read_labeled(
    path: Path, text_column: str, label_column: str | None, context_column: str | None = None
) -> LabeledFile:
    iterator, fields = open_csv(path)
    if text_column not in fields:
        raise DataError(f"{path} has no column {text_column!r} (columns: {', '.join(fields)})")
    if label_column is None:
        label_column = next((c for c in ("severity", "level") if c in fields), None)
        if label_column is None:
            raise DataError(f"{path} needs a severity (0-6) or level column, or --label-column")
    elif label_column not in fields:
        raise DataError(f"{path} has no column {label_column!r}")
    if context_column is None and "context" in fields:
        context_column = "context"
    elif context_column is not None and context_column not in fields:
        raise DataError(f"{path} has no column {context_column!r}")
    kind = "severity" if label_column == "severity" else "level"
    llm_columns = tuple(column for column in LLM_COLUMNS if column in fields)
    rows: list[LabeledRow] = []
    for number, row in enumerate(iterator, start=2):
        raw = (row.get(label_column) or "").strip()
        try:
            if kind == "severity":
                severity = int(raw)
                truth = severity_class(severity)
                urgent, ideation = severity >= 3, severity >= 1
            else:
                level = parse_level(raw)
                truth = level_class(level)
                urgent, ideation = level >= Level.high, level >= Level.moderate
        except ValueError as exc:
            raise DataError(f"{path}:{number}: bad {label_column} {raw!r}: {exc}") from exc
        llm: dict[str, int | None] = {}
        for column in llm_columns:
            value = (row.get(column) or "").strip()
            llm[column] = int(float(value)) if value else None
        context = (
            _context(row.get(context_column) or "", f"{path}:{number}") if context_column else ()
        )
        rows.append(LabeledRow(row[text_column] or "", context, truth, urgent, ideation, llm))
    if not rows:
        raise DataError(f"{path} has no rows")
    return LabeledFile(rows, label_column, kind, llm_columns)


@dataclass(frozen=True, slots=True)
class Figures:
    n: int
    urgent: int
    flagged: int
    caught: int
    urgent_recall: float
    urgent_precision: float
    under_triage: int
    over_triage: int
    quadratic_kappa: float
    macro_f1: float
    confusion: list[list[int]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "urgent": self.urgent,
            "flagged_high_or_above": self.flagged,
            "caught": self.caught,
            "urgent_recall": round(self.urgent_recall, 4),
            "urgent_precision": round(self.urgent_precision, 4),
            "under_triage": self.under_triage,
            "over_triage": self.over_triage,
            "quadratic_kappa": round(self.quadratic_kappa, 4),
            "macro_f1": round(self.macro_f1, 4),
            "confusion": self.confusion,
        }


def quadratic_kappa(truth: Sequence[int], predicted: Sequence[int], classes: int = 4) -> float:
    observed = np.zeros((classes, classes))
    for t, p in zip(truth, predicted, strict=True):
        observed[t, p] += 1
    total = observed.sum()
    if total == 0:
        return 0.0
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    index = np.arange(classes)
    weights = (index[:, None] - index[None, :]) ** 2 / (classes - 1) ** 2
    denominator = float((weights * expected).sum())
    if denominator == 0.0:
        return 1.0 if float((weights * observed).sum()) == 0.0 else 0.0
    return 1.0 - float((weights * observed).sum()) / denominator


def macro_f1(truth: Sequence[int], predicted: Sequence[int]) -> float:
    """Mean F1 over the classes that occur in either sequence (as scikit-learn's 'macro')."""
    labels = sorted(set(truth) | set(predicted))
    scores = []
    for label in labels:
        tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t == label and p == label)
        fp = sum(1 for t, p in zip(truth, predicted, strict=True) if t != label and p == label)
        fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t == label and p != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def figures(truth: Sequence[int], urgent: Sequence[bool], predicted: Sequence[int]) -> Figures:
    """``predicted`` is in evaluation classes; caught = predicted class >= high (2)."""
    flagged = [p >= 2 for p in predicted]
    caught = sum(1 for u, f in zip(urgent, flagged, strict=True) if u and f)
    positives = sum(urgent)
    flagged_count = sum(flagged)
    confusion = [[0] * 4 for _ in range(4)]
    for t, p in zip(truth, predicted, strict=True):
        confusion[t][p] += 1
    return Figures(
        n=len(truth),
        urgent=positives,
        flagged=flagged_count,
        caught=caught,
        urgent_recall=caught / positives if positives else 0.0,
        urgent_precision=caught / flagged_count if flagged_count else 0.0,
        under_triage=positives - caught,
        over_triage=flagged_count - caught,
        quadratic_kappa=quadratic_kappa(truth, predicted),
        macro_f1=macro_f1(truth, predicted),
        confusion=confusion,
    )


@dataclass(slots=True)
class Scored:
    results: list[TriageResult]
    milliseconds: list[float]
    protocol: str
    training_overlap: int = 0
    folds: list[dict[str, Any]] = field(default_factory=list)


def score_rows(
    rows: Sequence[LabeledRow], assess: Assess
) -> tuple[list[TriageResult], list[float]]:
    results: list[TriageResult] = []
    milliseconds: list[float] = []
    for row in rows:
        started = time.perf_counter()
        results.append(assess(row.text, row.context))
        milliseconds.append((time.perf_counter() - started) * 1000.0)
    return results, milliseconds


def cross_validate(
    labeled: LabeledFile,
    folds: int,
    seed: int,
    extra_training: Sequence[Example],
    config: TrainingConfig,
) -> Scored:
    """Re-train inside each stratified fold; score the held-out fold with rules + that model."""
    from sklearn.model_selection import StratifiedKFold

    from app.triage.engine import Engine
    from app.triage.model import LinearModel
    from app.triage.training import train

    rows = labeled.rows
    if folds < 2 or folds > len(rows):
        raise DataError(f"--cv needs 2..{len(rows)} folds")
    held_texts = {text_id(row.text) for row in rows}
    extra = [e for e in extra_training if text_id(e.text) not in held_texts]
    # A row with context is labelled as a conversation: it is scored, but its last message alone
    # is not a training example (same rule as for the case table).
    examples = [Example(row.text, row.urgent, row.ideation, source="evaluated") for row in rows]
    trainable = {i for i, row in enumerate(rows) if not row.context}
    strata = [row.truth for row in rows]
    if min(strata.count(value) for value in set(strata)) < folds:
        strata = [int(row.urgent) for row in rows]
    results: list[TriageResult | None] = [None] * len(rows)
    milliseconds = [0.0] * len(rows)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_notes: list[dict[str, Any]] = []
    for train_rows, test_rows in splitter.split(np.zeros(len(rows)), strata):
        fold_examples = [examples[i] for i in train_rows if i in trainable]
        document = train(fold_examples + list(extra), config)
        engine = Engine(LinearModel(document), cache_size=0)
        scored, times = score_rows([rows[i] for i in test_rows], engine.assess)
        for index, result, ms in zip(test_rows, scored, times, strict=True):
            results[index] = result
            milliseconds[index] = ms
        fold_notes.append(
            {
                "train": len(fold_examples) + len(extra),
                "held_out": len(test_rows),
                "thresholds": document["thresholds"],
            }
        )
    return Scored(
        results=[r for r in results if r is not None],
        milliseconds=milliseconds,
        protocol=(
            f"{folds}-fold stratified cross-validation (seed {seed}); each fold re-trains the "
            f"model on the other folds + {len(extra)} other training examples, thresholds from "
            f"{config.inner_repeats}x repeated inner {config.inner_folds}-fold CVs of that "
            "training data only"
        ),
        folds=fold_notes,
    )


def ours_figures(labeled: LabeledFile, scored: Scored) -> Figures:
    return figures(
        [row.truth for row in labeled.rows],
        [row.urgent for row in labeled.rows],
        [level_class(result.level) for result in scored.results],
    )


def llm_figures(labeled: LabeledFile) -> dict[str, tuple[Figures, int]]:
    """Per LLM column: figures on the rows it labelled, and how many rows it left empty."""
    out: dict[str, tuple[Figures, int]] = {}
    for column in labeled.llm_columns:
        labelled = [row for row in labeled.rows if row.llm[column] is not None]
        predicted = []
        for row in labelled:
            value = row.llm[column]
            assert value is not None
            predicted.append(severity_class(min(max(value, 0), 6)))
        out[column] = (
            figures([r.truth for r in labelled], [r.urgent for r in labelled], predicted),
            len(labeled.rows) - len(labelled),
        )
    return out


def latency(milliseconds: Sequence[float]) -> dict[str, float]:
    if not milliseconds:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    values = np.asarray(milliseconds)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
    }


@dataclass(frozen=True, slots=True)
class FalseAlarms:
    safe: int
    alarms: int
    rate: float
    by_level: dict[str, int]
    examples: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "safe_rows": self.safe,
            "rated_high_or_imminent": self.alarms,
            "false_alarm_rate": round(self.rate, 4),
            "levels": self.by_level,
            "examples": self.examples,
        }


def false_alarms(texts: Sequence[str], results: Sequence[TriageResult]) -> FalseAlarms:
    by_level = {level.name: 0 for level in Level}
    alarms: list[str] = []
    for text, result in zip(texts, results, strict=True):
        by_level[result.level.name] += 1
        if result.level >= Level.high:
            alarms.append(text)
    return FalseAlarms(
        safe=len(texts),
        alarms=len(alarms),
        rate=len(alarms) / len(texts) if texts else 0.0,
        by_level=by_level,
        examples=alarms[:20],
    )


CLASS_LEGEND = (
    "classes: 0 none/low (severity 0 | level none,low), 1 moderate (severity 1-2), "
    "2 high (severity 3-4), 3 imminent (severity 5-6); urgent = severity >= 3 / level >= high, "
    "caught = rated high or imminent"
)

__all__ = ["CLASS_LEGEND", "CLASS_NAMES", "FalseAlarms", "Figures", "LabeledFile"]
