"""Labelled data: where it lives, how its labels map onto Beacon's levels, how it is read.

The public data stays where it is published (``<repo>/../shared/data/triage``); it is read in
place, never copied into the repository. Beacon's own hand-written cases ship in the package.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from app.triage.types import Level

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "triage"
DEV_CSV = SHARED_DATA / "cssrs-reddit-dev.csv"
XSTEST_CSV = SHARED_DATA / "xstest-prompts.csv"
CASES_CSV = Path(__file__).resolve().parent / "data" / "cases.csv"

LLM_COLUMNS = ("gpt_label", "claude_label", "gemini_label", "llama_label", "mistral_label")

# Four evaluation classes (the data README's mapping, with 5-6 read as imminent):
#   0 = none/low (severity 0), 1 = moderate (1-2), 2 = high (3-4), 3 = imminent (5-6)
CLASS_NAMES = ("none/low", "moderate", "high", "imminent")


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    urgent: bool  # C-SSRS severity >= 3, or level >= high
    ideation: bool  # severity >= 1, or level >= moderate
    source: str


def text_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class DataError(ValueError):
    """A data file is missing, unreadable or lacks the columns it needs."""


def severity_class(severity: int) -> int:
    if not 0 <= severity <= 6:
        raise DataError(f"severity {severity} is outside the C-SSRS 0-6 scale")
    return 0 if severity == 0 else 1 if severity <= 2 else 2 if severity <= 4 else 3


def level_class(level: Level) -> int:
    return max(int(level) - 1, 0)


def parse_level(value: str) -> Level:
    text = value.strip().lower()
    if text.isdigit():
        number = int(text)
        if 0 <= number <= 4:
            return Level(number)
    elif text in Level.__members__:
        return Level[text]
    raise DataError(f"level {value!r} is neither a level name nor 0-4")


def raise_csv_field_limit() -> None:
    """Reddit posts can exceed csv's default 128 KiB field limit."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def open_csv(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """All rows and the header of a labelled CSV (labelled sets are small; `batch` streams)."""
    raise_csv_field_limit()
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return rows, list(reader.fieldnames or [])
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} is not a UTF-8 CSV file: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Case:
    """One row of Beacon's own table: a chat message, earlier messages, what triage must say."""

    text: str
    context: tuple[str, ...]
    level: Level
    signals: tuple[str, ...]  # must all be present
    absent: tuple[str, ...]  # must all be absent ("!signal" in the file)


def load_cases(path: Path = CASES_CSV) -> list[Case]:
    rows, fields = open_csv(path)
    missing = {"text", "context", "level", "signals"} - set(fields)
    if missing:
        raise DataError(f"{path} lacks columns {sorted(missing)}")
    cases: list[Case] = []
    for number, row in enumerate(rows, start=2):
        try:
            context = tuple(json.loads(row["context"])) if row["context"].strip() else ()
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: context is not a JSON list: {exc}") from exc
        wanted = row["signals"].split()
        cases.append(
            Case(
                text=row["text"],
                context=context,
                level=parse_level(row["level"]),
                signals=tuple(s for s in wanted if not s.startswith("!")),
                absent=tuple(s[1:] for s in wanted if s.startswith("!")),
            )
        )
    return cases


def case_examples(cases: list[Case]) -> list[Example]:
    """Training examples from the case table: single messages only (a context case's label
    belongs to the conversation, not to its last message read alone)."""
    return [
        Example(
            text=case.text,
            urgent=case.level >= Level.high,
            ideation=case.level >= Level.moderate,
            source="cases",
        )
        for case in cases
        if not case.context
    ]


def dev_examples(path: Path = DEV_CSV) -> list[Example]:
    rows, fields = open_csv(path)
    if not {"text", "severity"} <= set(fields):
        raise DataError(f"{path} lacks the text and severity columns")
    examples = []
    for row in rows:
        severity = int(row["severity"])
        severity_class(severity)
        examples.append(
            Example(text=row["text"], urgent=severity >= 3, ideation=severity >= 1, source="cssrs")
        )
    return examples


def training_examples(dev: Path = DEV_CSV, cases: Path = CASES_CSV) -> list[Example]:
    """Everything the packaged model is trained on, in a fixed order."""
    return dev_examples(dev) + case_examples(load_cases(cases))
