"""Hashed character n-grams (``Heads.char_grams``): an optional sparse block beside the word
n-grams, off in the packaged model (docs/triage.md, "Calm false alarms").

The n-grams and their buckets are checked on exact strings; the engine on the packaged heads
with a char-gram weight planted on one bucket, so that nothing depends on what a model learnt.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from app.triage import Engine
from app.triage.heads import (
    HASH_BUCKETS,
    MODEL_DIR,
    SPARSE_SCALE,
    CharGrams,
    ModelFormatError,
    char_terms,
    hashed,
    load,
    save,
    sparse_features,
    sparse_terms,
)
from app.triage.learn import TrainingConfig
from tests.triage.conftest import trained_document


@pytest.mark.parametrize(
    ("text", "low", "high", "expected"),
    [
        ("kms", 3, 3, [" km", "kms", "ms "]),
        ("kms", 3, 5, [" km", "kms", "ms ", " kms", "kms ", " kms "]),
        ("kms rn", 4, 4, [" kms", "kms ", " rn "]),  # within words: no " kms rn" across them
        ("ok", 5, 5, []),  # shorter than the n-gram, padded included
        ("me voy", 2, 2, [" m", "me", "e ", " v", "vo", "oy", "y "]),
        ("", 3, 5, []),
        ("¿¡...!?", 3, 5, []),  # no word
    ],
)
def test_the_n_grams_of_each_word(text: str, low: int, high: int, expected: list[str]) -> None:
    assert char_terms(text, CharGrams(16, low, high)) == expected


@pytest.mark.parametrize("grams", [None, CharGrams(), CharGrams(0, 2, 6, 3.0)])
def test_off_it_is_the_word_n_grams_exactly(grams: CharGrams | None) -> None:
    buckets, values = sparse_features("i want to kms rn", ["hey"], grams)
    expected = hashed(sparse_terms("i want to kms rn", ["hey"]))
    assert buckets.tolist() == expected[0].tolist()
    assert values.tolist() == expected[1].tolist()


@pytest.mark.parametrize(
    ("text", "context", "grams"),
    [
        ("kms", (), CharGrams(1 << 16, 3, 3, 1.0)),
        ("quiero matarme ya", ("hola",), CharGrams(1 << 18, 3, 5, 2.0)),
        ("it hurts", ("no", "really"), CharGrams(7, 2, 4, 0.5)),  # few buckets: collisions
    ],
)
def test_on_the_char_block_follows_the_words(
    text: str, context: tuple[str, ...], grams: CharGrams
) -> None:
    words = hashed(sparse_terms(text, context))
    buckets, values = sparse_features(text, context, grams)
    count = len(words[0])
    assert buckets[:count].tolist() == words[0].tolist()
    assert values[:count].tolist() == words[1].tolist()
    chars = buckets[count:]
    expected = sorted(
        {HASH_BUCKETS + zlib.crc32(t.encode()) % grams.buckets for t in char_terms(text, grams)}
    )
    assert chars.tolist() == expected  # distinct, sorted, after every word bucket
    # The char block is L2-normalised on its own, then scaled relative to the words' norm.
    assert np.isclose(np.linalg.norm(values[count:]), SPARSE_SCALE * grams.scale, rtol=1e-5)
    assert np.isclose(np.linalg.norm(values[:count]), SPARSE_SCALE, rtol=1e-5)


def test_the_context_adds_no_char_grams() -> None:
    grams = CharGrams(1 << 16, 3, 5)
    alone = sparse_features("hello", (), grams)[0]
    after = sparse_features("hello", ("goodbye forever",), grams)[0]
    assert set(alone) - set(after) == set()
    assert {int(b) for b in after if b >= HASH_BUCKETS} == {
        int(b) for b in alone if b >= HASH_BUCKETS
    }


def test_the_engine_reads_the_char_block_of_its_model(engine: Engine) -> None:
    """A weight on the bucket of " km" moves "kms"-free text that contains it, and only when
    the model's char_grams are on."""
    grams = CharGrams(1 << 16, 3, 3, 1.0)
    bucket = HASH_BUCKETS + zlib.crc32(b" km") % grams.buckets
    chat = engine.heads.chat
    index = np.append(chat.sparse_index, bucket).astype(np.int64)
    weights = np.vstack([chat.sparse_weights, np.array([[0, 0, 0, 0, 30.0]], np.float32)])
    planted = dataclasses.replace(chat, sparse_index=index, sparse_weights=weights)
    text = "the km marker"
    off = Engine(
        dataclasses.replace(engine.heads, chat=planted),
        engine.rulebook,
        engine.languages,
        engine.encoder,
    )
    on = Engine(
        dataclasses.replace(engine.heads, chat=planted, char_grams=grams),
        engine.rulebook,
        engine.languages,
        engine.encoder,
    )
    p_off = off.read_many([text])[0].probabilities
    p_on = on.read_many([text])[0].probabilities
    assert np.allclose(p_off, engine.read_many([text])[0].probabilities, atol=1e-6)
    assert p_on[3] > 0.99 > p_off[3]
    # In a conversation too (the batch path with context).
    in_context = on.assess(text, ["hello"])
    assert in_context.level >= off.assess(text, ["hello"]).level


def test_the_packaged_model_has_the_char_grams_training_gives_it(engine: Engine) -> None:
    """Off: the model and its version are what they were before the option."""
    assert engine.heads.char_grams == TrainingConfig().char_grams == CharGrams()
    assert "char_grams" not in engine.heads.document
    assert int(engine.heads.chat.sparse_index.max()) < HASH_BUCKETS


@pytest.mark.parametrize(
    ("grams", "recorded"),
    [
        (CharGrams(), None),
        (CharGrams(1 << 18, 3, 5, 2.0), {"buckets": 1 << 18, "low": 3, "high": 5, "scale": 2.0}),
    ],
)
def test_training_records_the_char_grams_only_when_on(
    engine: Engine, grams: CharGrams, recorded: dict[str, object] | None
) -> None:
    document = trained_document(engine, TrainingConfig(char_grams=grams))
    assert document.get("char_grams") == recorded


def _packaged() -> tuple[dict[str, object], dict[str, np.ndarray]]:
    document = json.loads((MODEL_DIR / "model.json").read_text(encoding="utf-8"))
    with np.load(io.BytesIO((MODEL_DIR / "heads.npz").read_bytes()), allow_pickle=False) as f:
        return document, {name: f[name] for name in f.files}


def test_the_char_grams_are_read_from_the_model(tmp_path: Path) -> None:
    document, arrays = _packaged()
    document["char_grams"] = {"buckets": 1 << 18, "low": 3, "high": 5, "scale": 2}
    save(document, arrays, tmp_path)
    assert load(tmp_path).char_grams == CharGrams(1 << 18, 3, 5, 2.0)


@pytest.mark.parametrize(
    "stored",
    [
        {"buckets": 0, "low": 3, "high": 5, "scale": 1.0},
        {"buckets": 1 << 25, "low": 3, "high": 5, "scale": 1.0},
        {"buckets": 1024, "low": 0, "high": 5, "scale": 1.0},
        {"buckets": 1024, "low": 5, "high": 3, "scale": 1.0},
        {"buckets": 1024, "low": 3, "high": 11, "scale": 1.0},
        {"buckets": 1024, "low": 3, "high": 5, "scale": 0.0},
        {"buckets": 1024, "low": 3, "high": 5, "scale": "1"},
        {"buckets": 1024.0, "low": 3, "high": 5, "scale": 1.0},
        {"buckets": 1024, "low": 3, "high": 5},
        [1024, 3, 5, 1.0],
    ],
)
def test_malformed_char_grams_are_refused(tmp_path: Path, stored: object) -> None:
    document, arrays = _packaged()
    document["char_grams"] = stored
    save(document, arrays, tmp_path)
    with pytest.raises(ModelFormatError, match="char_grams"):
        load(tmp_path)
