"""Labelled data in the repository: Beacon's chat corpus and the vendored public sets.

Everything the engine is trained or measured on lives under ``data/triage`` (see its README for
sources and licences), so a fresh clone needs nothing outside itself:

- ``chat/train.jsonl`` and ``chat/dev.jsonl`` — the team's chat corpus, written by writers
  w1–w12 (``chat/raw``); dev chooses thresholds only.
- ``chat/test.jsonl`` (writers s1–s2) and ``chat/test-2.jsonl`` (s3) — the **sealed** splits,
  written by writers who never saw train or dev (``chat/sealed``). They are only ever
  reported, never used to choose anything.
- ``public/cssrs-reddit-dev.csv`` (C-SSRS Reddit, CC BY 4.0) and ``public/xstest-prompts.csv``
  (XSTest, CC BY 4.0, measured only: false alarms).
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.triage.types import Level

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data" / "triage"
CHAT_DIR = DATA_DIR / "chat"
TRAIN_JSONL = CHAT_DIR / "train.jsonl"
DEV_JSONL = CHAT_DIR / "dev.jsonl"
TEST_JSONL = CHAT_DIR / "test.jsonl"
TEST2_JSONL = CHAT_DIR / "test-2.jsonl"
CSSRS_CSV = DATA_DIR / "public" / "cssrs-reddit-dev.csv"
XSTEST_CSV = DATA_DIR / "public" / "xstest-prompts.csv"

# Share of the writers' rows (by hash of text) held out as dev.
DEV_SHARE = 0.15


class DataError(ValueError):
    """A data file is missing or malformed (reported to the user, exit code 2)."""


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled message. ``levels`` is the set of levels the label allows (C-SSRS maps
    severity 5-6 to "high or imminent", severity 0 to "none or low")."""

    text: str
    context: tuple[str, ...]
    levels: frozenset[int]
    category: str = ""
    lang: str = "en"
    third_party: bool = False
    source: str = ""
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def level(self) -> int:
        """The label's lowest level: what under-triage is measured against."""
        return min(self.levels)

    def at_least(self, level: int) -> bool | None:
        """Is the true level ≥ ``level``? None when the label does not say."""
        if all(value >= level for value in self.levels):
            return True
        if all(value < level for value in self.levels):
            return False
        return None


def text_id(text: str, context: Sequence[str] = ()) -> str:
    return hashlib.sha256(json.dumps([text, list(context)]).encode()).hexdigest()[:16]


def raise_csv_field_limit() -> None:
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def read_jsonl(path: Path) -> list[Example]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            level = int(row["level"])
            if not 0 <= level <= 4:
                raise ValueError("level out of range")
            examples.append(
                Example(
                    text=str(row["text"]),
                    context=tuple(str(item) for item in row.get("context") or ()),
                    levels=frozenset({level}),
                    category=str(row.get("category", "")),
                    lang=str(row.get("lang", "en")),
                    third_party=bool(row.get("third_party", False)),
                    source=str(row.get("writer", path.stem)),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{number}: invalid row: {exc}") from exc
    return examples


def write_jsonl(path: Path, examples: Iterable[Example]) -> int:
    lines = [
        json.dumps(
            {
                "text": example.text,
                "context": list(example.context),
                "level": example.level,
                "category": example.category,
                "lang": example.lang,
                "third_party": example.third_party,
                "writer": example.source,
            },
            ensure_ascii=False,
        )
        for example in examples
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def severity_levels(severity: int) -> frozenset[int]:
    """C-SSRS severity 0-6 → the Beacon levels it allows (data/triage/public/README.md)."""
    if severity <= 0:
        return frozenset({0, 1})
    if severity <= 2:
        return frozenset({2})
    if severity <= 4:
        return frozenset({3})
    return frozenset({3, 4})


def cssrs_examples(path: Path = CSSRS_CSV) -> list[Example]:
    raise_csv_field_limit()
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return [
        Example(
            text=row["text"],
            context=(),
            levels=severity_levels(int(row["severity"])),
            category=f"cssrs:{row['severity']}",
            source="cssrs",
            meta={key: value for key, value in row.items() if key.endswith("_label")},
        )
        for row in rows
    ]


def level_of(value: str) -> int:
    """A level given by name ("high") or number ("3")."""
    value = value.strip().lower()
    if value.isdigit() and 0 <= int(value) <= 4:
        return int(value)
    try:
        return int(Level[value])
    except KeyError:
        raise DataError(
            f"unknown level {value!r} (none, low, moderate, high, imminent or 0-4)"
        ) from None
