"""The statistical half of triage: a linear model stored as plain JSON, scored in pure Python.

Training (``app.triage.training``) uses scikit-learn; run time never imports it and never
unpickles anything. The JSON holds, per feature block, each term's IDF and its weight in each head,
so scoring a message is a sparse dot product over the terms it contains:

    z = intercept + Σ_block (Σ_term tfidf(term) · weight(term)) / ‖tfidf‖₂ + Σ_rule weight(rule)

exactly what scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` + ``LogisticRegression`` compute.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class LinearModel:
    """Scores feature lists with the weights of a trained model document (see module doc)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        if document.get("format") != FORMAT:
            raise ModelFormatError(f"unsupported model format {document.get('format')!r}")
        try:
            intercepts = document["intercepts"]
            self._intercept_urgent = float(intercepts["urgent"])
            self._intercept_ideation = float(intercepts["ideation"])
            blocks = document["blocks"]
            self._text_blocks: tuple[dict[str, tuple[float, float, float]], ...] = tuple(
                {term: (float(v[0]), float(v[1]), float(v[2])) for term, v in blocks[name].items()}
                for name in ("word", "char")
            )
            self._rules: dict[str, tuple[float, float]] = {
                term: (float(v[0]), float(v[1])) for term, v in blocks["rule"].items()
            }
            thresholds = document["thresholds"]
            self.thresholds = Thresholds(
                urgent=float(thresholds["urgent"]), ideation=float(thresholds["ideation"])
            )
            self.version = str(document["model_version"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelFormatError(f"malformed model document: {exc}") from exc
        self.document = document

    def decision(
        self, word: Sequence[str], char: Sequence[str], rule: Sequence[str]
    ) -> HeadScores:
        urgent = self._intercept_urgent
        ideation = self._intercept_ideation
        for terms, vocabulary in zip((word, char), self._text_blocks, strict=True):
            squares = 0.0
            dot_urgent = 0.0
            dot_ideation = 0.0
            get = vocabulary.get
            for term, count in Counter(terms).items():
                entry = get(term)
                if entry is None:
                    continue
                value = (1.0 + math.log(count)) * entry[0] if count > 1 else entry[0]
                squares += value * value
                dot_urgent += value * entry[1]
                dot_ideation += value * entry[2]
            if squares > 0.0:
                norm = math.sqrt(squares)
                urgent += dot_urgent / norm
                ideation += dot_ideation / norm
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
