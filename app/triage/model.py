"""The statistical half of triage: a linear model stored as plain JSON, scored in pure Python.

Training (``app.triage.training``) uses scikit-learn; run time never imports it and never
unpickles anything. The JSON holds, per feature block, each term's IDF and its weight in each head,
so scoring a message is a sparse dot product over the terms it contains:

    z = intercept + Σ_block (Σ_term tfidf(term) · weight(term)) / ‖tfidf‖₂ + Σ_rule weight(rule)

exactly what scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` + ``LogisticRegression`` compute
(numpy does the arithmetic; the test suite checks equality with scikit-learn).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.triage.features import word_char_grams, word_terms

MODEL_PATH = Path(__file__).resolve().parent / "model" / "triage-model.json"
FORMAT = 1


class ModelFormatError(ValueError):
    """The model file is missing, corrupt or from an incompatible format."""


@dataclass(frozen=True, slots=True)
class HeadScores:
    """Decision values (log-odds before the threshold) of the two heads."""

    urgent: float
    ideation: float


@dataclass(frozen=True, slots=True)
class Thresholds:
    urgent: float
    ideation: float


class _TextBlock:
    """One TF-IDF block: term → row of (idf, urgent weight, ideation weight)."""

    def __init__(self, entries: Mapping[str, Sequence[float]]) -> None:
        self.index = {term: position for position, term in enumerate(entries)}
        table = np.array([[float(v[0]), float(v[1]), float(v[2])] for v in entries.values()])
        table = table.reshape(-1, 3)
        self.idf = np.ascontiguousarray(table[:, 0])
        self.urgent = np.ascontiguousarray(table[:, 1])
        self.ideation = np.ascontiguousarray(table[:, 2])

    def score(self, ids: list[int]) -> tuple[float, float]:
        """(urgent, ideation) contribution of a document given its term ids (with repeats)."""
        if not ids:
            return 0.0, 0.0
        unique, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
        values = (1.0 + np.log(counts)) * self.idf[unique]
        norm = math.sqrt(float(values @ values))
        return float(values @ self.urgent[unique]) / norm, float(
            values @ self.ideation[unique]
        ) / norm


class LinearModel:
    """Scores a message with the weights of a trained model document (see module doc)."""

    # Bound on the per-word cache of character n-gram ids (chat vocabulary is small; this only
    # guards memory against a stream of unique junk words).
    WORD_CACHE_LIMIT = 200_000

    def __init__(self, document: Mapping[str, Any]) -> None:
        if document.get("format") != FORMAT:
            raise ModelFormatError(f"unsupported model format {document.get('format')!r}")
        try:
            intercepts = document["intercepts"]
            self._intercept_urgent = float(intercepts["urgent"])
            self._intercept_ideation = float(intercepts["ideation"])
            blocks = document["blocks"]
            self._word = _TextBlock(blocks["word"])
            self._char = _TextBlock(blocks["char"])
            self._rules: dict[str, tuple[float, float]] = {
                term: (float(v[0]), float(v[1])) for term, v in blocks["rule"].items()
            }
            thresholds = document["thresholds"]
            self.thresholds = Thresholds(
                urgent=float(thresholds["urgent"]), ideation=float(thresholds["ideation"])
            )
            self.version = str(document["model_version"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ModelFormatError(f"malformed model document: {exc}") from exc
        self.document = document
        self._word_grams: dict[str, list[int]] = {}
        # Words of the model's own vocabulary are the common ones: map them to their character
        # n-grams once, at load (tens of milliseconds), instead of on first sight.
        for term in self._word.index:
            if " " not in term:
                self._char_ids(term)

    def _char_ids(self, word: str) -> list[int]:
        ids = self._word_grams.get(word)
        if ids is None:
            index = self._char.index
            ids = [index[gram] for gram in word_char_grams(word) if gram in index]
            if len(self._word_grams) >= self.WORD_CACHE_LIMIT:
                self._word_grams.clear()
            self._word_grams[word] = ids
        return ids

    def decision(self, words: Sequence[str], rule: Sequence[str]) -> HeadScores:
        """Decision values for a message given its tokens and rule terms (features module)."""
        index = self._word.index
        word_ids = [index[term] for term in word_terms(list(words)) if term in index]
        char_ids: list[int] = []
        for word in words:
            char_ids.extend(self._char_ids(word))
        word_urgent, word_ideation = self._word.score(word_ids)
        char_urgent, char_ideation = self._char.score(char_ids)
        urgent = self._intercept_urgent + word_urgent + char_urgent
        ideation = self._intercept_ideation + word_ideation + char_ideation
        for term in rule:
            weights = self._rules.get(term)
            if weights is not None:
                urgent += weights[0]
                ideation += weights[1]
        return HeadScores(urgent=urgent, ideation=ideation)


def content_version(document: Mapping[str, Any]) -> str:
    """A short hash of everything that decides scores: same hash, same results."""
    relevant = {key: value for key, value in document.items() if key not in {"model_version"}}
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def load(path: Path = MODEL_PATH) -> LinearModel:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"cannot read triage model {path}: {exc}") from exc
    return LinearModel(document)


def sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


def dumps(document: Mapping[str, Any]) -> str:
    """Deterministic JSON text: keys sorted, one vocabulary term per line (reviewable diffs)."""
    lines = ["{"]
    keys = sorted(document)
    for position, key in enumerate(keys):
        comma = "," if position < len(keys) - 1 else ""
        value = document[key]
        if key == "blocks":
            lines.append(f"{json.dumps(key)}: {{")
            names = sorted(value)
            for block_position, name in enumerate(names):
                entries = value[name]
                lines.append(f"{json.dumps(name)}: {{")
                terms = sorted(entries)
                for term_position, term in enumerate(terms):
                    term_comma = "," if term_position < len(terms) - 1 else ""
                    encoded = json.dumps(entries[term], separators=(",", ":"))
                    lines.append(f"{json.dumps(term, ensure_ascii=False)}:{encoded}{term_comma}")
                lines.append("}," if block_position < len(names) - 1 else "}")
            lines.append("}" + comma)
        else:
            encoded = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            lines.append(f"{json.dumps(key)}: {encoded}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"
