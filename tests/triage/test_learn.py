"""The chat heads' n-gram scale (TrainingConfig.ngram_scale), on small synthetic features: no
encoder, so the arithmetic is checked exactly."""

from __future__ import annotations

import numpy as np

from app.triage.corpus import Example
from app.triage.learn import Features, TrainingConfig, fit_chat_heads, fit_head_set


def _data() -> tuple[Features, list[Example]]:
    generator = np.random.default_rng(7)
    levels = [index % 5 for index in range(60)]
    rows = generator.normal(size=(60, 6)).astype(np.float32)
    rows[:, 0] += np.array(levels, dtype=np.float32)  # something to learn
    sparse = [
        (
            np.array(sorted({level * 10 + 1, int(generator.integers(100, 140))}), dtype=np.int64),
            np.ones(2, dtype=np.float32),
        )
        for level in levels
    ]
    examples = [
        Example(text=f"row {i}", context=(), levels=frozenset({k})) for i, k in enumerate(levels)
    ]
    return Features(rows, sparse, np.full(60, 5)), examples


def test_scaling_ngrams_changes_only_their_values() -> None:
    features, _ = _data()
    scaled = features.scaled_ngrams(2.0)
    assert np.array_equal(scaled.rows, features.rows)
    for (buckets, values), (same, doubled) in zip(features.sparse, scaled.sparse, strict=True):
        assert np.array_equal(buckets, same)
        assert np.array_equal(doubled, values * 2)


def test_scaled_heads_read_unscaled_ngrams_as_they_were_fitted() -> None:
    features, examples = _data()
    config = TrainingConfig(ngram_scale=3.0)
    heads = fit_chat_heads(features, examples, config)
    fitted = fit_head_set(features.scaled_ngrams(3.0), examples, np.ones(60), config.regularisation)
    # The engine reads unscaled n-grams; the folded weights give the fitted model's logits.
    assert np.allclose(
        heads.logits(features.rows, features.sparse),
        fitted.logits(features.rows, features.scaled_ngrams(3.0).sparse),
        atol=1e-4,
    )
    # A weaker penalty on the n-grams lets them carry more of the decision.
    plain = fit_chat_heads(features, examples, TrainingConfig())
    assert np.abs(heads.sparse_weights).sum() > np.abs(plain.sparse_weights).sum()
