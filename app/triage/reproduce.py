"""Does a re-trained model reproduce the packaged one? (``beacon triage train --check``)

Byte equality (the same version hash) holds only on the kind of CPU the model was trained on:
numpy's BLAS kernels differ between CPU families (AVX2 vs AVX-512, Intel vs AMD), the encoder's
float16 neighbour bank then differs in its last bit, and the iterative head fit carries those
differences into weights at the 1e-3 level and thresholds at the 1e-4 level. Measured on an AMD
EPYC against v2-42374f351840 (trained on the previous development machine): weights at most
0.0047 apart (their scale is ~3), thresholds at most 0.0004, dev levels equal on 1,675 of 1,676.

So the check proves what matters instead of what is incidental: the re-trained model was built
from exactly the same data, rule tables and configuration (digests equal), its arrays are
numerically the same within a stated tolerance, and it rates the dev split the same way (levels
agree on at least ``MIN_AGREEMENT`` of rows). A real change to the data or the recipe breaks the
digests; a drifted model breaks the tolerances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.triage.corpus import Example
from app.triage.engine import Engine
from app.triage.heads import Heads

WEIGHT_TOLERANCE = 0.02
THRESHOLD_TOLERANCE = 0.005
MIN_AGREEMENT = 0.995


@dataclass(slots=True)
class Comparison:
    identical: bool
    problems: list[str] = field(default_factory=list)
    max_weight_difference: float = 0.0
    max_threshold_difference: float = 0.0
    level_agreement: float = 1.0

    @property
    def reproduces(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "max_weight_difference": round(self.max_weight_difference, 6),
            "max_threshold_difference": round(self.max_threshold_difference, 6),
            "dev_level_agreement": round(self.level_agreement, 4),
            "problems": self.problems,
        }


def compare_documents(packaged: Mapping[str, Any], retrained: Mapping[str, Any]) -> list[str]:
    """Everything but the version and the thresholds must be equal: data digests, rule tables,
    configuration, marks, categories, encoder."""
    ignored = {"version", "thresholds"}
    keys = (set(packaged) | set(retrained)) - ignored
    return [
        f"model.json: {key} differs"
        for key in sorted(keys)
        if packaged.get(key) != retrained.get(key)
    ]


def compare_arrays(
    packaged: Mapping[str, np.ndarray], retrained: Mapping[str, np.ndarray]
) -> tuple[float, list[str]]:
    problems: list[str] = []
    worst = 0.0
    for name in sorted(set(packaged) | set(retrained)):
        if name not in packaged or name not in retrained:
            problems.append(f"heads.npz: {name} is only in one model")
            continue
        old, new = packaged[name], retrained[name]
        if old.shape != new.shape or old.dtype != new.dtype:
            problems.append(f"heads.npz: {name} has another shape or type")
        elif old.dtype.kind in "fc":
            if old.size:
                difference = float(np.max(np.abs(old.astype(np.float64) - new.astype(np.float64))))
                worst = max(worst, difference)
        elif not np.array_equal(old, new):
            problems.append(f"heads.npz: {name} differs")
    if worst > WEIGHT_TOLERANCE:
        problems.append(f"heads.npz: weights differ by {worst:.4g} (> {WEIGHT_TOLERANCE})")
    return worst, problems


def compare_thresholds(
    packaged: Mapping[str, Sequence[float]], retrained: Mapping[str, Sequence[float]]
) -> tuple[float, list[str]]:
    worst = 0.0
    for name in ("chat", "long"):
        for old, new in zip(packaged[name], retrained[name], strict=True):
            worst = max(worst, abs(float(old) - float(new)))
    if worst > THRESHOLD_TOLERANCE:
        return worst, [f"thresholds differ by {worst:.4g} (> {THRESHOLD_TOLERANCE})"]
    return worst, []


def level_agreement(old: Engine, new: Engine, examples: Sequence[Example]) -> float:
    items = [(example.text, example.context) for example in examples]
    if not items:
        return 1.0
    same = sum(
        a.level == b.level
        for a, b in zip(old.assess_many(items), new.assess_many(items), strict=True)
    )
    return same / len(items)


def compare(
    packaged: Heads,
    packaged_arrays: Mapping[str, np.ndarray],
    retrained: Heads,
    retrained_arrays: Mapping[str, np.ndarray],
    engines: tuple[Engine, Engine],
    dev: Sequence[Example],
) -> Comparison:
    if packaged.version == retrained.version:
        return Comparison(identical=True)
    problems = compare_documents(packaged.document, retrained.document)
    weights, array_problems = compare_arrays(packaged_arrays, retrained_arrays)
    thresholds, threshold_problems = compare_thresholds(
        packaged.document["thresholds"], retrained.document["thresholds"]
    )
    problems += array_problems + threshold_problems
    agreement = level_agreement(*engines, dev) if not problems else 0.0
    if not problems and agreement < MIN_AGREEMENT:
        problems.append(f"dev levels agree on {agreement:.2%} of rows (< {MIN_AGREEMENT:.1%})")
    return Comparison(
        identical=False,
        problems=problems,
        max_weight_difference=weights,
        max_threshold_difference=thresholds,
        level_agreement=agreement,
    )
