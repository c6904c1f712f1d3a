"""``beacon triage corpus``: the writers' files → deduplicated train / dev / sealed test splits.

Splitting happens before any training. The writers of ``chat/raw`` (train + dev, split by a hash
of the text) never saw the sealed writers' files (``chat/sealed``) and vice versa. Near-duplicates
— rows whose conversation embeds within ``NEAR_DUPLICATE`` cosine of an earlier row — are removed
within each pool, and a train/dev row that nearly duplicates a sealed row is dropped from
train/dev so that the test measures generalisation, not recall of a memorised sentence. The
writers' side yields (not the sealed side) so that adding training data never changes the
sealed split: the test set depends only on the sealed writers' files.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.triage import corpus
from app.triage.corpus import Example
from app.triage.encoder import Encoder
from app.triage.normalize import normalize

NEAR_DUPLICATE = 0.95
# Each round of sealed writers is its own test file, so that a later round never changes an
# earlier one and each file's floors compare like with like (floors only ever go up).
SEALED_ROUNDS: dict[str, tuple[str, ...]] = {
    "test.jsonl": ("s1", "s2"),
    "test-2.jsonl": ("s3",),
}


def _conversation(example: Example) -> str:
    return " | ".join(normalize(message) for message in (*example.context, example.text))


def _dedupe(examples: Sequence[Example], vectors: np.ndarray) -> tuple[list[int], int]:
    """Indices to keep (first of each near-duplicate group), and how many were dropped."""
    kept: list[int] = []
    dropped = 0
    for index in range(len(examples)):
        if kept:
            similarity = vectors[kept] @ vectors[index]
            if float(similarity.max()) >= NEAR_DUPLICATE:
                dropped += 1
                continue
        kept.append(index)
    return kept, dropped


def waiting_writers(chat_dir: Path = corpus.CHAT_DIR) -> frozenset[str]:
    """The writers listed in ``waiting.txt``: written, in ``raw/``, not yet in the splits."""
    path = chat_dir / "waiting.txt"
    if not path.exists():
        return frozenset()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text("utf-8").splitlines())
    return frozenset(line for line in lines if line)


def _read_pool(directory: Path, leave_out: frozenset[str] = frozenset()) -> list[Example]:
    rows: list[Example] = []
    for path in sorted(directory.glob("*/*.jsonl")):
        if path.parent.name not in leave_out:
            rows.extend(corpus.read_jsonl(path))
    seen: set[str] = set()
    unique = []
    for row in rows:
        key = corpus.text_id(normalize(row.text), [normalize(m) for m in row.context])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def build(
    chat_dir: Path = corpus.CHAT_DIR,
    encoder: Encoder | None = None,
    with_waiting: bool = False,
) -> dict[str, object]:
    """Rebuild the splits in ``chat_dir``; the writers of ``waiting.txt`` only ``with_waiting``."""
    encoder = encoder or Encoder(cache_size=1)
    waiting = frozenset() if with_waiting else waiting_writers(chat_dir)
    unknown_waiting = sorted(w for w in waiting if not (chat_dir / "raw" / w).is_dir())
    if unknown_waiting:
        raise corpus.DataError(f"waiting.txt names writers with no raw/ folder: {unknown_waiting}")
    writers = _read_pool(chat_dir / "raw", waiting)
    sealed = _read_pool(chat_dir / "sealed")
    writer_vectors = encoder.encode([_conversation(e) for e in writers])
    sealed_vectors = encoder.encode([_conversation(e) for e in sealed])
    keep_writers, dropped_writers = _dedupe(writers, writer_vectors)
    keep_sealed, dropped_sealed = _dedupe(sealed, sealed_vectors)
    rounds = {writer: name for name, writers_of in SEALED_ROUNDS.items() for writer in writers_of}
    unknown = sorted({row.source for row in sealed} - set(rounds))
    if unknown:
        raise corpus.DataError(f"sealed writers {unknown} belong to no round of SEALED_ROUNDS")
    tests: dict[str, list[Example]] = {name: [] for name in SEALED_ROUNDS}
    for index in keep_sealed:
        tests[rounds[sealed[index].source]].append(sealed[index])
    kept_sealed_vectors = sealed_vectors[keep_sealed]
    leaked = 0
    train: list[Example] = []
    dev: list[Example] = []
    for index in keep_writers:
        if (
            len(kept_sealed_vectors)
            and float((kept_sealed_vectors @ writer_vectors[index]).max()) >= NEAR_DUPLICATE
        ):
            leaked += 1
            continue
        example = writers[index]
        bucket = int(corpus.text_id(example.text, example.context), 16) % 1000
        (dev if bucket < corpus.DEV_SHARE * 1000 else train).append(example)
    corpus.write_jsonl(chat_dir / "train.jsonl", train)
    corpus.write_jsonl(chat_dir / "dev.jsonl", dev)
    for name, rows in tests.items():
        corpus.write_jsonl(chat_dir / name, rows)
    report: dict[str, object] = {
        "near_duplicate_cosine": NEAR_DUPLICATE,
        "written_rows": {"writers": len(writers), "sealed": len(sealed)},
        "waiting_writers": sorted(waiting),
        "dropped": {
            "near_duplicates_writers": dropped_writers,
            "near_duplicates_sealed": dropped_sealed,
            "writer_rows_too_close_to_sealed": leaked,
        },
        "splits": {
            name: _summary(rows)
            for name, rows in (
                ("train", train),
                ("dev", dev),
                *((name.removesuffix(".jsonl"), rows) for name, rows in tests.items()),
            )
        },
    }
    (chat_dir / "splits.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


def _summary(rows: Sequence[Example]) -> dict[str, object]:
    return {
        "rows": len(rows),
        "by_level": dict(sorted(Counter(str(row.level) for row in rows).items())),
        "by_lang": dict(sorted(Counter(row.lang for row in rows).items())),
        "multi_turn": sum(bool(row.context) for row in rows),
        "hard_negative": sum(row.category == "hard_negative" for row in rows),
        "writers": dict(sorted(Counter(row.source for row in rows).items())),
    }
