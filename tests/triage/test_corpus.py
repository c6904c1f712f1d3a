"""The data in the repository: vendored public sets with their source and licence, and the team's
chat corpus, split before any training into train, dev and a sealed test written by other
writers. Everything is read from ``data/triage``; nothing from ``../shared``."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from app.triage import Engine, corpus
from app.triage import splits as splits_module
from app.triage.corpus import DataError, Example, read_jsonl

PUBLIC = corpus.DATA_DIR / "public"
SPLITS = {
    "train": corpus.TRAIN_JSONL,
    "dev": corpus.DEV_JSONL,
    "test": corpus.TEST_JSONL,
    "test-2": corpus.TEST2_JSONL,
}
SEALED = ("test", "test-2")
SEALED_WRITERS = {"s1", "s2", "s3"}
# Chat lines are at most 600 characters; the long-post writer's rows up to 2,500 (SCHEMA.md).
MAX_CHARS = 2500


@pytest.fixture(scope="module")
def splits() -> dict[str, list[Example]]:
    return {name: read_jsonl(path) for name, path in SPLITS.items()}


def _validator() -> Callable[[object], list[str]]:
    path = corpus.CHAT_DIR / "validate.py"
    spec = importlib.util.spec_from_file_location("beacon_corpus_validate", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problems: Callable[[object], list[str]] = module.problems
    return problems


# ------------------------------------------------------------------------ vendored public data
def _section(readme: str, filename: str) -> str:
    match = re.search(rf"^## {re.escape(filename)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert match, f"data/triage/public/README.md has no section for {filename}"
    return match.group(1)


@pytest.mark.parametrize(
    ("filename", "text_column", "rows", "source"),
    [
        ("cssrs-reddit-dev.csv", "text", 710, "arXiv:2505.13480"),
        ("xstest-prompts.csv", "prompt", 450, "paul-rottger/exaggerated-safety"),
    ],
)
def test_vendored_files_exist_with_source_and_licence(
    filename: str, text_column: str, rows: int, source: str
) -> None:
    path = PUBLIC / filename
    assert path.is_file()
    section = _section((PUBLIC / "README.md").read_text(encoding="utf-8"), filename)
    assert "CC BY 4.0" in section
    assert source in section
    assert f"{rows} " in section  # the README says how many rows the file holds
    corpus.raise_csv_field_limit()
    with path.open(newline="", encoding="utf-8") as handle:
        found = [row[text_column] for row in csv.DictReader(handle)]
    assert len(found) == rows
    assert all(text.strip() for text in found)


def test_the_cssrs_file_reads_as_examples_with_levels_from_severity() -> None:
    examples = corpus.cssrs_examples()
    assert len(examples) == 710
    assert {example.category for example in examples} == {f"cssrs:{n}" for n in range(7)}
    for example in examples:
        severity = int(example.category.split(":")[1])
        assert example.levels == corpus.severity_levels(severity)
    assert all(set(example.meta) <= {f"{m}_label" for m in _LLMS} for example in examples)


_LLMS = ("gpt", "claude", "gemini", "llama", "mistral")


def test_the_project_readme_credits_the_public_sources() -> None:
    readme = (corpus.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "arXiv:2505.13480" in readme
    assert "XSTest" in readme
    assert "CC BY 4.0" in readme


# ------------------------------------------------------------------------ the chat corpus
def test_the_corpus_is_large_bilingual_and_conversational(
    splits: dict[str, list[Example]],
) -> None:
    rows = [row for split in splits.values() for row in split]
    assert len(rows) >= 5000
    assert sum(row.lang == "es" for row in rows) >= 1000
    assert sum(bool(row.context) for row in rows) >= 0.20 * len(rows)
    assert sum(row.category == "hard_negative" for row in rows) >= 0.20 * len(rows)
    assert {row.level for row in rows} == {0, 1, 2, 3, 4}
    assert len(splits["test"]) >= 1200
    assert len(splits["test-2"]) >= 600


def test_every_split_covers_both_languages_and_every_level(
    splits: dict[str, list[Example]],
) -> None:
    for name, rows in splits.items():
        assert {row.lang for row in rows} == {"en", "es"}, name
        assert {row.level for row in rows} == {0, 1, 2, 3, 4}, name


def test_the_sealed_test_shares_no_conversation_with_train_or_dev(
    splits: dict[str, list[Example]],
) -> None:
    seen = {(row.text, row.context) for name in ("train", "dev") for row in splits[name]}
    leaked = [
        row.text for name in SEALED for row in splits[name] if (row.text, row.context) in seen
    ]
    assert not leaked
    train = {(row.text, row.context) for row in splits["train"]}
    assert not train & {(row.text, row.context) for row in splits["dev"]}


def test_the_sealed_writers_never_wrote_train_or_dev(splits: dict[str, list[Example]]) -> None:
    assert {row.source for row in splits["test"]} == {"s1", "s2"}
    assert {row.source for row in splits["test-2"]} == {"s3"}
    for name in ("train", "dev"):
        writers = {row.source for row in splits[name]}
        assert writers, name
        assert not writers & SEALED_WRITERS, name
    raw = {path.name for path in (corpus.CHAT_DIR / "raw").iterdir() if path.is_dir()}
    sealed = {path.name for path in (corpus.CHAT_DIR / "sealed").iterdir() if path.is_dir()}
    assert sealed == SEALED_WRITERS
    assert not raw & sealed


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_every_row_validates_against_the_schema(name: str) -> None:
    problems = _validator()
    invalid = []
    for number, line in enumerate(SPLITS[name].read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            found = problems(json.loads(line), MAX_CHARS)
            if found:
                invalid.append((number, found))
    assert not invalid, invalid[:5]


def test_the_validator_catches_bad_rows() -> None:
    """The schema check used above is not vacuous."""
    problems = _validator()
    good = {
        "text": "hi",
        "context": [],
        "level": 0,
        "category": "calm",
        "lang": "en",
        "third_party": False,
        "writer": "w1",
    }
    assert problems(good) == []
    for change in (
        {"level": 5},
        {"level": True},
        {"lang": "fr"},
        {"category": "nope"},
        {"text": ""},
        {"context": ["ok", ""]},
        {"third_party": "no"},
    ):
        assert problems({**good, **change}), change
    assert problems({key: value for key, value in good.items() if key != "writer"})
    assert problems(["not", "an", "object"])


def test_splits_json_describes_the_split_files(splits: dict[str, list[Example]]) -> None:
    summary = json.loads((corpus.CHAT_DIR / "splits.json").read_text(encoding="utf-8"))
    for name, rows in splits.items():
        assert summary["splits"][name]["rows"] == len(rows), name


# ------------------------------------------------------------------------ read_jsonl
_GOOD = '{"text": "hi", "context": [], "level": 0, "lang": "en"}'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "invalid row"),
        ('{"context": [], "level": 0}', "text"),
        ('{"text": "hi", "level": 7}', "level out of range"),
        ('{"text": "hi", "level": -1}', "level out of range"),
        ('{"text": "hi", "level": "high"}', "invalid row"),
        ('{"text": "hi"}', "level"),
        ('["hi", 0]', "invalid row"),
    ],
    ids=["not-json", "no-text", "level-7", "level-negative", "level-name", "no-level", "array"],
)
def test_read_jsonl_rejects_malformed_lines(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(f"{_GOOD}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"rows\.jsonl:3: .*{reason}"):
        read_jsonl(path)


def test_read_jsonl_reads_good_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        _GOOD + "\n" + '{"text": "ya", "context": ["hola"], "level": 4, "lang": "es", '
        '"category": "farewell", "third_party": true, "writer": "w9"}\n',
        encoding="utf-8",
    )
    first, second = read_jsonl(path)
    assert (first.text, first.context, first.levels, first.source) == (
        "hi",
        (),
        frozenset({0}),
        "rows",
    )
    assert second.context == ("hola",)
    assert (second.level, second.lang, second.category) == (4, "es", "farewell")
    assert second.third_party is True
    assert second.source == "w9"


def test_read_jsonl_of_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_a_written_corpus_reads_back_the_same(
    tmp_path: Path, splits: dict[str, list[Example]]
) -> None:
    path = tmp_path / "copy.jsonl"
    rows = splits["dev"][:50]
    assert corpus.write_jsonl(path, rows) == 50
    assert read_jsonl(path) == rows


def test_level_names_and_numbers() -> None:
    assert corpus.level_of("imminent") == 4
    assert corpus.level_of(" High ") == 3
    assert corpus.level_of("0") == 0
    with pytest.raises(DataError, match="unknown level 'urgent'"):
        corpus.level_of("urgent")
    with pytest.raises(DataError):
        corpus.level_of("5")


# ------------------------------------------------------------------------ rebuilding the splits
def test_the_corpus_command_rebuilds_exactly_the_committed_splits(
    tmp_path: Path, engine: Engine
) -> None:
    """`beacon triage corpus` on the repository's writers' files gives back the split files the
    packaged model was trained on, byte for byte: the waiting writers stay out."""
    chat = tmp_path / "chat"
    for part in ("raw", "sealed"):
        shutil.copytree(corpus.CHAT_DIR / part, chat / part)
    shutil.copy(corpus.CHAT_DIR / "waiting.txt", chat / "waiting.txt")
    report = splits_module.build(chat, engine.encoder)
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "test-2.jsonl", "splits.json"):
        assert (chat / name).read_bytes() == (corpus.CHAT_DIR / name).read_bytes(), name
    waiting = splits_module.waiting_writers()
    assert report["waiting_writers"] == sorted(waiting)
    in_splits = _writers(chat)
    assert in_splits
    assert not in_splits & waiting
    assert all((corpus.CHAT_DIR / "raw" / writer).is_dir() for writer in waiting)


@pytest.fixture
def small_chat(tmp_path: Path) -> Path:
    chat = tmp_path / "chat"
    for folder, writer, texts in (
        ("raw", "wa", ["hello there, is anyone around", "my cat knocked my tea over"]),
        ("raw", "wb", ["the bus was late again today", "I finished the puzzle at last"]),
        ("sealed", "s1", ["what time does the library open"]),
    ):
        (chat / folder / writer).mkdir(parents=True)
        corpus.write_jsonl(
            chat / folder / writer / "01.jsonl",
            [Example(text, (), frozenset({0}), "calm", source=writer) for text in texts],
        )
    (chat / "waiting.txt").write_text("# waiting\nwb  # not yet\n", encoding="utf-8")
    return chat


def _writers(chat: Path) -> set[str]:
    return {row.source for name in ("train.jsonl", "dev.jsonl") for row in read_jsonl(chat / name)}


def test_waiting_writers_join_the_splits_only_when_asked(small_chat: Path, engine: Engine) -> None:
    report = splits_module.build(small_chat, engine.encoder)
    assert _writers(small_chat) == {"wa"}
    assert report["waiting_writers"] == ["wb"]
    report = splits_module.build(small_chat, engine.encoder, with_waiting=True)
    assert _writers(small_chat) == {"wa", "wb"}
    assert report["waiting_writers"] == []
    assert [row.source for row in read_jsonl(small_chat / "test.jsonl")] == ["s1"]


def test_a_waiting_writer_without_files_is_refused(small_chat: Path, engine: Engine) -> None:
    (small_chat / "waiting.txt").write_text("wb\nw99\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no raw/ folder: \['w99'\]"):
        splits_module.build(small_chat, engine.encoder)
