"""``beacon triage corpus``: the writers' files → deduplicated train / dev / sealed test splits.

Splitting happens before any training. The writers of ``chat/raw`` (train + dev, split by a hash
of the text) never saw the sealed writers' files (``chat/sealed``) and vice versa. Near-duplicates
— rows whose conversation embeds within ``NEAR_DUPLICATE`` cosine of an earlier row — are removed
within each pool, and a sealed row that nearly duplicates a train/dev row is dropped from the
sealed split so that the test measures generalisation, not recall of a memorised sentence.
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


def _read_pool(directory: Path) -> list[Example]:
    rows: list[Example] = []
    for path in sorted(directory.glob("*/*.jsonl")):
        rows.extend(corpus.read_jsonl(path))
    seen: set[str] = set()
    unique = []
    for row in rows:
        key = corpus.text_id(normalize(row.text), [normalize(m) for m in row.context])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def build(chat_dir: Path = corpus.CHAT_DIR, encoder: Encoder | None = None) -> dict[str, object]:
    encoder = encoder or Encoder(cache_size=1)
    writers = _read_pool(chat_dir / "raw")
    sealed = _read_pool(chat_dir / "sealed")
    writer_vectors = encoder.encode([_conversation(e) for e in writers])
    sealed_vectors = encoder.encode([_conversation(e) for e in sealed])
    keep_writers, dropped_writers = _dedupe(writers, writer_vectors)
    keep_sealed, dropped_sealed = _dedupe(sealed, sealed_vectors)
    kept_writer_vectors = writer_vectors[keep_writers]
    leaked = 0
    test: list[Example] = []
    for index in keep_sealed:
        if (
            len(kept_writer_vectors)
            and float((kept_writer_vectors @ sealed_vectors[index]).max()) >= NEAR_DUPLICATE
        ):
            leaked += 1
            continue
        test.append(sealed[index])
    train: list[Example] = []
    dev: list[Example] = []
    for index in keep_writers:
        example = writers[index]
        bucket = int(corpus.text_id(example.text, example.context), 16) % 1000
        (dev if bucket < corpus.DEV_SHARE * 1000 else train).append(example)
    corpus.write_jsonl(chat_dir / "train.jsonl", train)
    corpus.write_jsonl(chat_dir / "dev.jsonl", dev)
    corpus.write_jsonl(chat_dir / "test.jsonl", test)
    report: dict[str, object] = {
        "near_duplicate_cosine": NEAR_DUPLICATE,
        "written_rows": {"writers": len(writers), "sealed": len(sealed)},
        "dropped": {
            "near_duplicates_writers": dropped_writers,
            "near_duplicates_sealed": dropped_sealed,
            "sealed_too_close_to_train_or_dev": leaked,
        },
        "splits": {
            name: _summary(rows) for name, rows in (("train", train), ("dev", dev), ("test", test))
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
