"""The learned part of the engine: ordinal heads over sentence embeddings, and its file format.

Four logistic heads share one feature vector and answer "is this at least low / moderate / high /
imminent?"; the level is the highest head that clears its threshold. Thresholds are chosen on the
dev split (never the sealed test split) and kept apart for chat lines and for long posts, whose
scores are distributed differently. A bank of labelled training embeddings gives each result the
categories of its nearest examples (``similar:method_in_progress``): explanation, not decision.

Stored as ``model/heads.npz`` (arrays) + ``model/model.json`` (everything a human reviews). The
version is a digest of both, so a result's ``model_version`` names exactly what produced it.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.triage.encoder import DIMENSIONS, ENCODER_ID, RESOURCE_SHA256

MODEL_DIR = Path(__file__).resolve().parent / "model"
FORMAT = "beacon-triage-heads/3"
HEAD_LEVELS = (1, 2, 3, 4)  # the cumulative probabilities P(level >= k) the engine reads
CLASSES = 5  # none .. imminent
# A message this long reads like a post, not a chat line (99 % of chat lines are shorter):
# it gets the heads trained with forum posts and their thresholds.
LONG_WORDS = 30
# Earlier messages whose embeddings summarise the conversation for the heads.
CONTEXT_WINDOW = 3

FloatArray = NDArray[np.float32]
Sparse = tuple[NDArray[np.int64], FloatArray]
# Word n-grams are hashed into this many buckets (crc32: stable across runs and platforms).
HASH_BUCKETS = 1 << 20
# Sparse n-gram features are scaled against the dense embedding block (chosen on dev).
SPARSE_SCALE = 2.0
_TERM = re.compile(r"[^\W_]+(?:'[^\W_]+)?|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


class ModelFormatError(ValueError):
    """The packaged model is missing, malformed or trained for another encoder."""


def feature_vector(
    embedding: FloatArray,
    marks: FloatArray,
    words: int,
    context_embeddings: FloatArray,
    context_marks: FloatArray,
) -> FloatArray:
    """What the heads read for one message (training and inference share this one function).

    ``context_embeddings``/``context_marks`` are the earlier messages, oldest first (0 rows for a
    first message).
    """
    has_context = len(context_embeddings) > 0
    if has_context:
        recent = context_embeddings[-CONTEXT_WINDOW:]
        context_mean = recent.mean(axis=0)
        context_last = context_embeddings[-1]
        context_mark_max = context_marks.max(axis=0)
    else:
        context_mean = np.zeros(DIMENSIONS, dtype=np.float32)
        context_last = context_mean
        context_mark_max = np.zeros(len(marks), dtype=np.float32)
    shape = np.array(
        [float(has_context), float(words >= LONG_WORDS), np.log1p(words) / 5.0],
        dtype=np.float32,
    )
    return np.concatenate(
        [embedding, context_mean, context_last, marks, context_mark_max, shape]
    ).astype(np.float32)


def sparse_terms(masked: str, context_masked: Sequence[str]) -> list[str]:
    """Word unigrams and bigrams of the message, and unigrams of the message before it.

    The embedding carries meaning; these carry the exact words ("lol", "class", "cabinet") that
    tell a hard negative from a crisis where two sentences embed close together.
    """
    words = _TERM.findall(masked)
    terms = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    if context_masked:
        terms.extend(f"ctx:{word}" for word in _TERM.findall(context_masked[-1]))
    return terms


def hashed(terms: Sequence[str]) -> tuple[NDArray[np.int64], FloatArray]:
    """Distinct buckets of ``terms`` with L2-normalised binary values, scaled."""
    if not terms:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    buckets = np.unique(
        np.fromiter((zlib.crc32(term.encode()) % HASH_BUCKETS for term in terms), dtype=np.int64)
    )
    value = SPARSE_SCALE / np.sqrt(len(buckets))
    return buckets, np.full(len(buckets), value, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class CharGrams:
    """Hashed character n-grams of each word (``char_wb`` style: the word padded by spaces, so
    "kms" gives " km", "kms", "ms "), a sparse block beside the word n-grams. Off when
    ``buckets`` is 0.

    Chat is misspelt, run together and inflected ("suicidarme", "matarme", "wanna", "cant"):
    a word n-gram seen once in training is a new column, its character n-grams are shared with
    the spellings and forms the heads did see. Buckets sit after the word n-grams' (offset
    HASH_BUCKETS), L2-normalised on their own, binary, and times ``scale`` relative to them."""

    buckets: int = 0
    low: int = 3
    high: int = 5
    scale: float = 1.0

    @property
    def on(self) -> bool:
        return self.buckets > 0

    def as_dict(self) -> dict[str, int | float]:
        return {"buckets": self.buckets, "low": self.low, "high": self.high, "scale": self.scale}


def char_terms(masked: str, grams: CharGrams) -> list[str]:
    """The character n-grams (``grams.low`` to ``grams.high`` long) inside each word."""
    out: list[str] = []
    for word in _TERM.findall(masked):
        padded = f" {word} "
        for size in range(grams.low, grams.high + 1):
            out.extend(padded[start : start + size] for start in range(len(padded) - size + 1))
    return out


def sparse_features(
    masked: str, context_masked: Sequence[str], grams: CharGrams | None = None
) -> Sparse:
    """Everything sparse the heads read for one message: word n-grams, and character n-grams
    when ``grams`` is on (training and inference share this one function)."""
    words = hashed(sparse_terms(masked, context_masked))
    if grams is None or not grams.on:
        return words
    terms = char_terms(masked, grams)
    if not terms:
        return words
    buckets = HASH_BUCKETS + np.unique(
        np.fromiter((zlib.crc32(term.encode()) % grams.buckets for term in terms), dtype=np.int64)
    )
    values = np.full(
        len(buckets), SPARSE_SCALE * grams.scale / np.sqrt(len(buckets)), dtype=np.float32
    )
    return np.concatenate([words[0], buckets]), np.concatenate([words[1], values])


def feature_size(mark_count: int) -> int:
    return 3 * DIMENSIONS + 2 * mark_count + 3


def _no_rows() -> FloatArray:
    return np.zeros((0, DIMENSIONS), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Neighbours:
    embeddings: FloatArray  # (n, 512), L2-normalised: the moderate+ training examples
    levels: NDArray[np.int8]
    categories: NDArray[np.int16]
    category_names: tuple[str, ...]
    # The calm (none/low) training examples, only in a model with the calm guard: they name
    # nothing (no signal comes from a calm example), they only vote in CalmGuard.
    calm: FloatArray = field(default_factory=_no_rows)


@dataclass(frozen=True, slots=True)
class CalmGuard:
    """The model's high+ call is held at moderate when at least ``calm`` of the ``k`` nearest
    labelled training examples (moderate+ and calm banks together, cosine on the guarded
    message's embedding) are none/low and at least ``similarity`` close. Off when ``k`` is 0.

    The linear heads' calm false alarms are confident (median P(level >= high) 0.5 on dev), so
    no threshold trades them away; a message that sits among calm examples the heads were
    trained on is the case where memory is more trustworthy than the linear boundary."""

    k: int = 0
    calm: int = 0
    similarity: float = 1.0

    @property
    def on(self) -> bool:
        return self.k > 0


@dataclass(frozen=True, slots=True)
class HeadSet:
    """One multinomial (softmax) classifier over [dense features | hashed n-grams].

    Its five class probabilities sum to P(level ≥ k) for k = 1..4, which are therefore
    consistent (P(≥ 2) ≥ P(≥ 3) ≥ P(≥ 4)) — four separately trained heads were not, and their
    disagreements were false alarms ("I'm hanging out with friends later" → imminent head only).
    """

    weights: FloatArray  # (5, dense features)
    bias: FloatArray  # (5,)
    sparse_index: NDArray[np.int64]  # sorted buckets that carry a weight
    sparse_weights: FloatArray  # (len(sparse_index), 5)
    thresholds: tuple[float, float, float, float]

    def logits(self, rows: FloatArray, sparse: Sequence[Sparse]) -> FloatArray:
        logits = rows @ self.weights.T + self.bias
        for row, (buckets, values) in enumerate(sparse):
            if len(buckets) == 0 or len(self.sparse_index) == 0:
                continue
            position = np.searchsorted(self.sparse_index, buckets)
            position = np.minimum(position, len(self.sparse_index) - 1)
            known = self.sparse_index[position] == buckets
            if known.any():
                logits[row] += values[known] @ self.sparse_weights[position[known]]
        return logits.astype(np.float32)


def cumulative(logits: FloatArray) -> FloatArray:
    """(n, 5) class logits → (n, 4) probabilities of level ≥ 1, 2, 3, 4."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    classes = exp / exp.sum(axis=1, keepdims=True)
    tails: FloatArray = np.cumsum(classes[:, ::-1], axis=1)[:, ::-1].astype(np.float32)
    clipped: FloatArray = np.clip(tails[:, 1:], 0.0, 1.0)
    return clipped


@dataclass(frozen=True, slots=True)
class Heads:
    chat: HeadSet  # chat lines (trained on the chat corpus)
    long: HeadSet  # texts of LONG_WORDS words or more (trained on long texts only)
    marks: tuple[str, ...]  # mark signals, in feature order
    neighbours: Neighbours
    version: str
    document: Mapping[str, Any]
    # A long text is rated high+ only if the chat heads also give it P(level >= moderate) of at
    # least this (0: no such check). The long-post heads learnt from few hundred posts and call
    # 37 % of calm long dev rows high+; the chat heads, trained on 30x more rows with n-grams,
    # rarely see no concern at all in a text that is really urgent (docs/triage.md).
    long_gate: float = 0.0
    calm_guard: CalmGuard = field(default_factory=CalmGuard)
    char_grams: CharGrams = field(default_factory=CharGrams)

    def sparse(self, masked: str, context_masked: Sequence[str]) -> Sparse:
        return sparse_features(masked, context_masked, self.char_grams)

    def head_set(self, words: int) -> HeadSet:
        return self.long if words >= LONG_WORDS else self.chat

    def probabilities(
        self, rows: FloatArray, sparse: Sequence[Sparse], words: Sequence[int]
    ) -> FloatArray:
        """(n, features) → (n, 4) probabilities of level ≥ 1, 2, 3, 4."""
        out = np.zeros((len(rows), len(HEAD_LEVELS)), dtype=np.float32)
        long = np.array([count >= LONG_WORDS for count in words], dtype=bool)
        for head_set, chosen in ((self.chat, ~long), (self.long, long)):
            index = np.flatnonzero(chosen)
            if len(index):
                out[index] = cumulative(
                    head_set.logits(rows[index], [sparse[int(i)] for i in index])
                )
        return out

    def agreed(
        self, rows: FloatArray, sparse: Sequence[Sparse], words: Sequence[int]
    ) -> NDArray[np.bool_]:
        """Per row, whether the model may rate it high or above: always for a chat line; for a
        long text only when the chat heads' P(level >= moderate) reaches ``long_gate``."""
        out = np.ones(len(rows), dtype=bool)
        if self.long_gate <= 0.0:
            return out
        index = np.flatnonzero([count >= LONG_WORDS for count in words])
        if len(index):
            chat = cumulative(self.chat.logits(rows[index], [sparse[int(i)] for i in index]))
            out[index] = chat[:, 1] >= self.long_gate
        return out

    def thresholds(self, words: int) -> tuple[float, float, float, float]:
        return self.head_set(words).thresholds

    def similar_many(
        self, embeddings: FloatArray, k: int = 5, floor: float = 0.72
    ) -> list[list[str]]:
        """Per row, the category of its nearest labelled moderate+ examples, when ≥ 2 of the
        ``k`` nearest agree and are close (cosine ≥ ``floor``): explanation, not decision."""
        bank = self.neighbours
        if len(bank.embeddings) == 0:
            return [[] for _ in embeddings]
        # bank @ rows.T, not rows @ bank.T: the bank is ~6 MB and this order streams it once
        # (measured 2 ms against 11 ms for one row).
        similarity = (bank.embeddings @ embeddings.T).T
        k = min(k, similarity.shape[1])
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        out: list[list[str]] = []
        for row, candidates in enumerate(top):
            names = [
                bank.category_names[int(bank.categories[i])]
                for i in candidates
                if similarity[row, i] >= floor
            ]
            best = max(sorted(set(names)), key=names.count) if names else ""
            out.append([best] if best and names.count(best) >= 2 else [])
        return out

    def calm_neighbourhood(self, embeddings: FloatArray) -> NDArray[np.bool_]:
        """Per row, whether CalmGuard holds: enough of its nearest examples are calm and close."""
        guard, bank = self.calm_guard, self.neighbours
        out = np.zeros(len(embeddings), dtype=bool)
        if not guard.on or len(embeddings) == 0 or len(bank.calm) == 0:
            return out
        # Moderate+ examples first, so that on a tie (the same words labelled calm in one
        # conversation and urgent in another) the urgent one is the nearer (a stable sort).
        similarity = np.concatenate(
            [(bank.embeddings @ embeddings.T).T, (bank.calm @ embeddings.T).T], axis=1
        )
        k = min(guard.k, similarity.shape[1])
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        close = np.take_along_axis(similarity, nearest, axis=1) >= guard.similarity
        calm = close & (nearest >= len(bank.embeddings))
        out[:] = calm.sum(axis=1) >= guard.calm
        return out


def _digest(document: Mapping[str, Any], arrays: bytes) -> str:
    hasher = hashlib.sha256(json.dumps(document, sort_keys=True).encode())
    hasher.update(arrays)
    return hasher.hexdigest()[:12]


def save(document: dict[str, Any], arrays: Mapping[str, np.ndarray], directory: Path) -> str:
    """Write the model; returns its version. Arrays are stored uncompressed, byte-stable."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: arrays[name] for name in sorted(arrays)})  # type: ignore[arg-type]
    raw = buffer.getvalue()
    body = {key: value for key, value in document.items() if key != "version"}
    version = f"v2-{_digest(body, raw)}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "heads.npz").write_bytes(raw)
    text = json.dumps({**body, "version": version}, indent=1, sort_keys=True, ensure_ascii=False)
    (directory / "model.json").write_text(text + "\n", encoding="utf-8")
    return version


def _thresholds(value: object, name: str) -> tuple[float, float, float, float]:
    if not (isinstance(value, list) and len(value) == 4):
        raise ModelFormatError(f"model.json: {name} must be 4 numbers")
    a, b, c, d = (float(item) for item in value)
    return (a, b, c, d)


def load(directory: Path = MODEL_DIR) -> Heads:
    try:
        document = json.loads((directory / "model.json").read_text(encoding="utf-8"))
        raw = (directory / "heads.npz").read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as arrays:
            data = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read the triage model in {directory}: {exc}") from exc
    if document.get("format") != FORMAT:
        raise ModelFormatError(f"model.json: format is not {FORMAT}")
    encoder = document.get("encoder", {})
    if encoder.get("id") != ENCODER_ID or encoder.get("sha256") != RESOURCE_SHA256:
        raise ModelFormatError("model.json: trained for another encoder")
    body = {key: value for key, value in document.items() if key != "version"}
    if document.get("version") != f"v2-{_digest(body, raw)}":
        raise ModelFormatError("model.json: version does not match the model's content")
    marks = tuple(document["marks"])
    sets = {}
    for name in ("chat", "long"):
        weights = data[f"{name}_weights"].astype(np.float32)
        if weights.shape != (CLASSES, feature_size(len(marks))):
            raise ModelFormatError(f"heads.npz: {name} weights have shape {weights.shape}")
        sets[name] = HeadSet(
            weights=weights,
            bias=data[f"{name}_bias"].astype(np.float32),
            sparse_index=data[f"{name}_sparse_index"].astype(np.int64),
            sparse_weights=data[f"{name}_sparse_weights"].astype(np.float32),
            thresholds=_thresholds(document["thresholds"][name], f"thresholds.{name}"),
        )
    guard = _calm_guard(document.get("calm_guard"))
    calm = data.get("calm_bank_embeddings")
    if guard.on and (calm is None or calm.ndim != 2 or calm.shape[1] != DIMENSIONS):
        raise ModelFormatError("heads.npz: the calm guard needs calm_bank_embeddings (n, 512)")
    neighbours = Neighbours(
        embeddings=data["bank_embeddings"].astype(np.float32),
        levels=data["bank_levels"].astype(np.int8),
        categories=data["bank_categories"].astype(np.int16),
        category_names=tuple(document["categories"]),
        calm=calm.astype(np.float32) if calm is not None else _no_rows(),
    )
    long_gate = document.get("long_gate", 0.0)
    if not isinstance(long_gate, int | float) or not 0.0 <= float(long_gate) < 1.0:
        raise ModelFormatError("model.json: long_gate must be a number in [0, 1)")
    return Heads(
        chat=sets["chat"],
        long=sets["long"],
        marks=marks,
        neighbours=neighbours,
        version=str(document["version"]),
        document=document,
        long_gate=float(long_gate),
        calm_guard=guard,
        char_grams=_char_grams(document.get("char_grams")),
    )


def _char_grams(value: object) -> CharGrams:
    if value is None:
        return CharGrams()
    if not isinstance(value, dict) or set(value) != {"buckets", "low", "high", "scale"}:
        raise ModelFormatError("model.json: char_grams must have buckets, low, high and scale")
    buckets, low, high, scale = value["buckets"], value["low"], value["high"], value["scale"]
    if not (
        isinstance(buckets, int)
        and isinstance(low, int)
        and isinstance(high, int)
        and isinstance(scale, int | float)
        and 1 <= buckets <= 1 << 24
        and 1 <= low <= high <= 10
        and float(scale) > 0.0
    ):
        raise ModelFormatError("model.json: char_grams needs buckets >= 1, 1 <= low <= high")
    return CharGrams(buckets, low, high, float(scale))


def _calm_guard(value: object) -> CalmGuard:
    if value is None:
        return CalmGuard()
    if not isinstance(value, dict) or set(value) != {"k", "calm", "similarity"}:
        raise ModelFormatError("model.json: calm_guard must have k, calm and similarity")
    k, calm, similarity = value["k"], value["calm"], value["similarity"]
    if not (
        isinstance(k, int)
        and isinstance(calm, int)
        and isinstance(similarity, int | float)
        and 1 <= calm <= k
        and -1.0 <= float(similarity) <= 1.0
    ):
        raise ModelFormatError("model.json: calm_guard needs 1 <= calm <= k and a cosine")
    return CalmGuard(k, calm, float(similarity))


def mark_vector(signals: Sequence[str] | frozenset[str], marks: Sequence[str]) -> FloatArray:
    present = set(signals)
    return np.array([1.0 if mark in present else 0.0 for mark in marks], dtype=np.float32)
