"""Training: labelled examples in, a JSON model document out (scikit-learn is used here only).

One function, :func:`train`, is used both by ``beacon triage train`` (the committed artifact) and by
``beacon triage eval --cv`` (once per outer fold), so cross-validated figures measure exactly the
procedure that produced the shipped model:

1. features come from :mod:`app.triage.features` (the same code inference runs);
2. two class-weighted logistic regressions over word + character TF-IDF and rule indicators:
   *urgent* (C-SSRS severity ≥ 3 / level ≥ high) and *ideation* (severity ≥ 1 / level ≥ moderate);
3. thresholds are chosen on out-of-fold predictions of inner, stratified, seeded
   cross-validations of the training data only (median over ``inner_repeats`` repetitions) —
   never on the data being evaluated — and only on the labelled posts, not on Beacon's case
   table. The urgent threshold is the strictest one whose recall of urgent posts, counting what
   the rules already catch, reaches ``urgent_recall`` (0.94: a margin above the 0.90 floor):
   missing an urgent person costs far more than answering a calmer one early, but every false
   alarm also takes a volunteer from someone else, so no lower than the target needs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import normalize

from app.triage.datasets import Example, text_id
from app.triage.features import char_terms, rule_terms, tokens, word_terms
from app.triage.model import FORMAT, content_version
from app.triage.rules import resolve, rule_level, scan
from app.triage.types import Level


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    c: float = 2.0
    rule_weight: float = 1.0
    # Beacon's hand-written cases are short and few; weighting them keeps the model from
    # contradicting what they specify (e.g. past abuse is moderate, not high).
    case_weight: float = 3.0
    min_df: int = 2
    urgent_recall: float = 0.94
    ideation_recall: float = 0.85
    inner_folds: int = 5
    inner_repeats: int = 3
    seed: int = 20250513


@dataclass(frozen=True, slots=True)
class _Features:
    word: list[str]
    char: list[str]
    rule: list[str]
    rule_level: int
    crisis: bool  # the model may raise it to moderate
    urgent_gate: bool  # the model may raise it to high


@lru_cache(maxsize=16384)
def featurize(text: str) -> _Features:
    from app.triage.engine import crisis_content, first_person, may_raise_urgent

    findings = scan(text)
    words = tokens(findings.text)
    signals = resolve([findings])
    return _Features(
        word=word_terms(words),
        char=char_terms(words),
        rule=rule_terms(findings),
        rule_level=int(rule_level(signals)),
        crisis=crisis_content(signals) or crisis_content(findings.pending),
        urgent_gate=may_raise_urgent(signals, findings.pending, len(words), first_person(words)),
    )


class _Corpus:
    """Term counts of a set of examples, computed once and sliced per (inner) fold.

    TF-IDF is computed here with scipy exactly as scikit-learn's
    ``TfidfVectorizer(min_df=k, sublinear_tf=True, norm="l2", smooth_idf=True)`` does, but without
    re-counting every document's n-grams for each of the dozens of fits a nested CV needs. Only
    terms seen in a fit's own training rows can enter its vocabulary (min_df counts those rows).
    """

    def __init__(self, texts: Sequence[str]) -> None:
        features = [featurize(text) for text in texts]
        self.counts: dict[str, tuple[csr_matrix, list[str]]] = {}
        for name in ("word", "char", "rule"):
            vocabulary: dict[str, int] = {}
            indptr = [0]
            indices: list[int] = []
            data: list[int] = []
            for feature in features:
                for term, count in Counter(getattr(feature, name)).items():
                    indices.append(vocabulary.setdefault(term, len(vocabulary)))
                    data.append(count)
                indptr.append(len(indices))
            matrix = csr_matrix(
                (np.asarray(data, dtype=np.float64), np.asarray(indices), np.asarray(indptr)),
                shape=(len(features), len(vocabulary)),
            )
            terms = [""] * len(vocabulary)
            for term, index in vocabulary.items():
                terms[index] = term
            self.counts[name] = (matrix, terms)


@dataclass(frozen=True, slots=True)
class _Block:
    columns: np.ndarray  # corpus columns kept
    idf: np.ndarray | None  # None: binary indicator block (rules)
    scale: float

    def transform(self, counts: csr_matrix) -> csr_matrix:
        matrix = counts[:, self.columns].tocsr()
        if self.idf is None:
            matrix.data = np.full_like(matrix.data, self.scale)
            return matrix
        matrix.data = np.log(matrix.data) + 1.0
        matrix = csr_matrix(matrix.multiply(self.idf[np.newaxis, :]))
        return normalize(matrix, norm="l2", copy=False)


class _Fitted:
    """TF-IDF blocks + both heads, fitted on some rows of a corpus."""

    def __init__(
        self, corpus: _Corpus, rows: np.ndarray, examples: Sequence[Example], config: TrainingConfig
    ) -> None:
        self.corpus = corpus
        self.config = config
        self.blocks: dict[str, _Block] = {}
        for name in ("word", "char", "rule"):
            counts = corpus.counts[name][0][rows]
            document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
            if name == "rule":
                columns = np.flatnonzero(document_frequency >= 1)
                self.blocks[name] = _Block(columns, None, config.rule_weight)
                continue
            columns = np.flatnonzero(document_frequency >= config.min_df)
            idf = np.log((1.0 + len(rows)) / (1.0 + document_frequency[columns])) + 1.0
            self.blocks[name] = _Block(columns, idf, 1.0)
        matrix = self.transform(rows)
        weights = np.array(
            [config.case_weight if examples[i].source == "cases" else 1.0 for i in rows]
        )
        self.urgent = self._head(matrix, [examples[i].urgent for i in rows], weights)
        self.ideation = self._head(matrix, [examples[i].ideation for i in rows], weights)

    def _head(
        self, matrix: csr_matrix, labels: list[bool], weights: np.ndarray
    ) -> LogisticRegression:
        head = LogisticRegression(
            C=self.config.c, class_weight="balanced", solver="liblinear", random_state=0
        )
        head.fit(matrix, np.asarray(labels, dtype=np.int64), sample_weight=weights)
        return head

    def transform(self, rows: np.ndarray) -> csr_matrix:
        return hstack(
            [
                self.blocks[name].transform(self.corpus.counts[name][0][rows])
                for name in ("word", "char", "rule")
            ]
        ).tocsr()

    def decisions(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        matrix = self.transform(rows)
        return self.urgent.decision_function(matrix), self.ideation.decision_function(matrix)

    def document(self) -> dict[str, Any]:
        """The JSON model: per term [idf, urgent weight, ideation weight]."""
        coef_u = self.urgent.coef_[0]
        coef_i = self.ideation.coef_[0]
        blocks: dict[str, Any] = {}
        offset = 0
        for name in ("word", "char", "rule"):
            block = self.blocks[name]
            terms = self.corpus.counts[name][1]
            entries: dict[str, list[float]] = {}
            for position, column in enumerate(block.columns):
                weights = [
                    _round(coef_u[offset + position] * block.scale),
                    _round(coef_i[offset + position] * block.scale),
                ]
                if block.idf is not None:
                    weights.insert(0, _round(block.idf[position]))
                entries[terms[column]] = weights
            blocks[name] = dict(sorted(entries.items()))
            offset += len(block.columns)
        return {
            "intercepts": {
                "urgent": _round(self.urgent.intercept_[0]),
                "ideation": _round(self.ideation.intercept_[0]),
            },
            "blocks": blocks,
        }


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")


def _strata(examples: Sequence[Example]) -> list[str]:
    return [f"{e.source}:{int(e.urgent)}{int(e.ideation)}" for e in examples]


def _pick_threshold(
    decision: np.ndarray,
    positive: np.ndarray,
    caught: np.ndarray,
    eligible: np.ndarray,
    target_recall: float,
    beta: float | None,
) -> float:
    """A threshold whose recall (rules' catches included) reaches ``target_recall``.

    ``beta=None``: the strictest such threshold (fewest false alarms that still meets the recall
    target). Otherwise the one with the best F-beta among those meeting it.
    """
    total = int(positive.sum())
    if total == 0:
        return math.inf
    candidates = np.unique(decision[eligible & ~caught])
    best: tuple[float, float] | None = None  # (f-beta, threshold)
    fallback = float(candidates.min()) if candidates.size else math.inf
    for threshold in candidates[::-1]:  # strictest first
        predicted = caught | (eligible & (decision >= threshold))
        true_positive = int((predicted & positive).sum())
        recall = true_positive / total
        if recall < target_recall:
            continue
        if beta is None:
            return float(threshold)
        precision = true_positive / max(int(predicted.sum()), 1)
        score = (1 + beta**2) * precision * recall / max(beta**2 * precision + recall, 1e-12)
        if best is None or score > best[0] + 1e-12:
            best = (score, float(threshold))
    return best[1] if best is not None else fallback


def _out_of_fold(
    corpus: _Corpus, examples: Sequence[Example], config: TrainingConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    urgent = np.zeros(len(examples))
    ideation = np.zeros(len(examples))
    strata = _strata(examples)
    splits = min(config.inner_folds, *Counter(strata).values())
    if splits < 2:
        raise ValueError("too few examples per class for an inner cross-validation")
    folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    for train_rows, test_rows in folds.split(np.zeros(len(examples)), strata):
        fitted = _Fitted(corpus, train_rows, examples, config)
        urgent[test_rows], ideation[test_rows] = fitted.decisions(test_rows)
    return urgent, ideation


def train(examples: Sequence[Example], config: TrainingConfig = TrainingConfig()) -> dict[str, Any]:
    """Fit on ``examples``; thresholds from an inner CV of the same examples (no other data)."""
    if len({e.urgent for e in examples}) < 2 or len({e.ideation for e in examples}) < 2:
        raise ValueError("training needs positive and negative examples for both heads")
    corpus = _Corpus([example.text for example in examples])
    features = [featurize(example.text) for example in examples]
    # Thresholds are calibrated on the labelled posts, not on Beacon's own case table: the cases
    # specify rule behaviour (the rules catch them by construction) and would flatter recall.
    calibration = np.array([example.source != "cases" for example in examples])
    if not calibration.any():
        calibration[:] = True
    levels = np.array([f.rule_level for f in features])[calibration]
    urgent = np.array([e.urgent for e in examples])[calibration]
    ideation = np.array([e.ideation for e in examples])[calibration]
    urgent_gate = np.array([f.urgent_gate for f in features])[calibration]
    crisis = np.array([f.crisis for f in features])[calibration]
    # The recall target lives in the thin tail of the score distribution, where one fold split
    # can move the threshold a lot; the median over repeated inner CVs is much steadier.
    urgent_thresholds: list[float] = []
    ideation_thresholds: list[float] = []
    for repeat in range(config.inner_repeats):
        oof_urgent, oof_ideation = _out_of_fold(corpus, examples, config, config.seed + repeat)
        urgent_thresholds.append(
            _pick_threshold(
                oof_urgent[calibration],
                urgent,
                levels >= int(Level.high),
                urgent_gate,
                config.urgent_recall,
                beta=None,
            )
        )
        ideation_thresholds.append(
            _pick_threshold(
                oof_ideation[calibration],
                ideation,
                levels >= int(Level.moderate),
                crisis,
                config.ideation_recall,
                beta=1.0,
            )
        )
    urgent_threshold = float(np.median(urgent_thresholds))
    ideation_threshold = float(np.median(ideation_thresholds))
    document: dict[str, Any] = {"format": FORMAT}
    everything = np.arange(len(examples))
    document.update(_Fitted(corpus, everything, examples, config).document())
    # JSON has no infinity; a threshold no decision value reaches means "rules only".
    document["thresholds"] = {
        "urgent": _round(min(urgent_threshold, 1e6)),
        "ideation": _round(min(ideation_threshold, 1e6)),
    }
    document["config"] = asdict(config)
    sources: dict[str, int] = {}
    for example in examples:
        sources[example.source] = sources.get(example.source, 0) + 1
    document["training"] = {
        "examples": len(examples),
        "sources": dict(sorted(sources.items())),
        "text_ids": sorted({text_id(example.text) for example in examples}),
    }
    document["model_version"] = f"triage-1+{content_version(document)}"
    return document
