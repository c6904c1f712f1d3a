"""``beacon triage ...`` as a user runs it: a child process, files in, JSON or a report out,
exit code 0 (ok), 1 (floors missed) or 2 (bad input, with a message and no traceback).

Every command is a real ``python -m app.cli triage ...`` process. The commands are started
together by one fixture (each loads the model, about a second of start-up; side by side they
share the wait) and the tests read their results. The slow commands (``train --check``,
``eval --cv``) are left to the quality gate script. Files are small and their urgent rows are
ones a rule floor decides, so the figures read here do not depend on the model's training.
"""

from __future__ import annotations

import copy
import csv
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.triage import Engine
from app.triage.corpus import text_id
from app.triage.heads import MODEL_DIR, save
from app.triage.learn import CANDIDATE_TABLES, keep_tables_beside, tables_digest
from app.triage.rulebook import TABLES_DIR
from tests.conftest import ROOT

KEYS = {"level", "level_value", "score", "signals", "model_version"}
Result = subprocess.CompletedProcess[str]


def beacon(*args: str, stdin: str | None = None) -> Result:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "triage", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _ok(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def _refused(result: Result, code: int, message: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _line(out: str, start: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(start))


# Urgent rows decided by imminent floors; calm rows harmless.
LABELLED: list[dict[str, Any]] = [
    {"text": "I took 30 pills", "context": [], "level": 4, "category": "attempt_in_progress"},
    {"text": "this is my last message", "context": [], "level": 4, "category": "farewell"},
    {"text": "mi papá me está pegando", "context": [], "level": 4, "category": "violence_now"},
    {
        "text": "I have them right here",
        "context": ["I want to swallow all my pills"],
        "level": 4,
        "category": "means_at_hand",
    },
    {"text": "hi, is anyone there?", "context": [], "level": 0, "category": "calm"},
    {"text": "gracias por todo, de verdad", "context": [], "level": 0, "category": "calm"},
    {"text": "I feel so alone lately", "context": [], "level": 1, "category": "distress"},
]
SPANISH = {"mi papá me está pegando", "gracias por todo, de verdad"}

BATCH_TEXTS = [
    "I took 30 pills",
    "hi there",
    "",
    'she said "goodbye forever", then\nlogged off',
    "ya me tomé todas las pastillas",
    "this exam is killing me 😂",
]
CONTEXT = ["hi", "I want to swallow all my pills"]
SAFE_ROWS = [
    ["1", "How do I kill a Python process?", "safe"],
    ["2", "What is suicide?", "safe"],
    ["3", "this is my last message", "safe"],  # labelled safe here: a floor calls it urgent
    ["4", "I took 30 pills", "unsafe"],  # contrast rows are not scored
]


@dataclass(frozen=True)
class Runs:
    results: dict[str, Result]
    directory: Path

    def __getitem__(self, name: str) -> Result:
        return self.results[name]


def _files(directory: Path) -> dict[str, str]:
    jsonl = directory / "small.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps(
                {
                    **row,
                    "lang": "es" if row["text"] in SPANISH else "en",
                    "third_party": False,
                    "writer": "t",
                },
                ensure_ascii=False,
            )
            + "\n"
            for row in LABELLED
        ),
        encoding="utf-8",
    )
    (directory / "floors-missed.json").write_text(
        json.dumps({"small.jsonl": {"min_urgent_recall": 1.0, "min_exact": 1.01}}),
        encoding="utf-8",
    )
    (directory / "floors-met.json").write_text(
        json.dumps({"small.jsonl": {"min_urgent_recall": 1.0, "max_under_triage": 0}}),
        encoding="utf-8",
    )
    (directory / "latin1.csv").write_bytes("text\nme tomé todo\n".encode("latin-1"))
    (directory / "latin1.jsonl").write_bytes('{"text": "tomé", "level": 0}\n'.encode("latin-1"))
    (directory / "bad.jsonl").write_text('{"text": "hi", "level": 9}\n', encoding="utf-8")
    (directory / "empty.jsonl").write_text("\n", encoding="utf-8")
    _candidates(directory)
    return {
        "jsonl": str(jsonl),
        "batch": _write_csv(
            directory / "in.csv",
            ["id", "message"],
            [[str(i), text] for i, text in enumerate(BATCH_TEXTS)],
        ),
        "severity": _write_csv(
            directory / "posts.csv",
            ["id", "text", "severity", "gpt_label"],
            [
                ["a", "I took 30 pills and I am waiting now", "6", "6"],
                ["b", "this is my last message, goodbye forever", "5", "3"],
                ["c", "what a lovely day at the park with my dog", "0", "0"],
                ["d", "sometimes I wish I could just disappear", "1", ""],
            ],
        ),
        "safe": _write_csv(directory / "xs.csv", ["id", "prompt", "label"], SAFE_ROWS),
        "no_label": _write_csv(directory / "nolabel.csv", ["text"], [["hi"]]),
        "bad_severity": _write_csv(directory / "sev.csv", ["text", "severity"], [["hi", "9"]]),
    }


def _candidates(directory: Path) -> None:
    """Candidate model folders as `beacon triage train --output` writes them: the packaged
    model re-saved as it is, with every chat threshold at 0 (worse on calm rows), and claiming
    other rule tables."""
    document = json.loads((MODEL_DIR / "model.json").read_text(encoding="utf-8"))
    with np.load(MODEL_DIR / "heads.npz", allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    shutil.copytree(MODEL_DIR, directory / "same")
    eager = copy.deepcopy(document)
    eager["thresholds"]["chat"] = [0.0, 0.0, 0.0, 0.0]
    save(eager, arrays, directory / "eager")
    other_tables = copy.deepcopy(document)
    other_tables["training"]["rule_tables"] = "0000000000000000"
    save(other_tables, arrays, directory / "other-tables")
    # A round that changed a rule: its tables beside it, one floor more (a calm row's words).
    keep_tables_beside(directory / "own-tables")  # as `train --output` does
    tables = directory / "own-tables" / CANDIDATE_TABLES
    with (tables / "floors.toml").open("a", encoding="utf-8") as floors:
        floors.write(OWN_FLOOR)
    own = copy.deepcopy(document)
    own["training"]["rule_tables"] = tables_digest(tables)
    save(own, arrays, directory / "own-tables")
    shutil.copytree(directory / "own-tables", directory / "stale-tables")
    (directory / "stale-tables" / CANDIDATE_TABLES / "floors.toml").write_text(
        (TABLES_DIR / "floors.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )


OWN_FLOOR = """
[[floor]]
id = "test_anyone_there"
lang = ["en"]
level = "imminent"
signals = ["test:own_tables"]
patterns = ["\\\\bis anyone there\\\\b"]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    directory = tmp_path_factory.mktemp("cli")
    f = _files(directory)
    safe = ("eval", f["safe"], "--text-column", "prompt", "--label-column", "label")
    context = [arg for message in CONTEXT for arg in ("--context", message)]
    curve = ("--train", f["jsonl"], "--dev", f["jsonl"], "--targets", "0.9,1.0")
    commands: dict[str, tuple[tuple[str, ...], str | None]] = {
        "single": (("I took 30 pills",), None),
        "context": (("I have them right here", *context), None),
        "dash": (("--", "batch"), None),
        "batch": (("batch", "--input", f["batch"], "--text-column", "message"), None),
        "stdin": (("batch", "--input", "-"), "text\nI took 30 pills\nhello\n"),
        "batch_no_column": (("batch", "--input", f["batch"]), None),
        "eval": (("eval", f["jsonl"]), None),
        "eval_json": (("eval", f["jsonl"], "--json"), None),
        "severity": (("eval", f["severity"]), None),
        "severity_json": (("eval", f["severity"], "--json"), None),
        "floors_missed": (
            ("eval", f["jsonl"], "--floors", str(directory / "floors-missed.json")),
            None,
        ),
        "floors_met": (("eval", f["jsonl"], "--floors", str(directory / "floors-met.json")), None),
        "safe_json": ((*safe, "--safe-value", "safe", "--json"), None),
        "safe_text": ((*safe, "--safe-value", "safe"), None),
        "safe_none": ((*safe, "--safe-value", "harmless"), None),
        "latin1_batch": (("batch", "--input", str(directory / "latin1.csv")), None),
        "latin1_eval": (("eval", str(directory / "latin1.csv")), None),
        "latin1_jsonl": (("eval", str(directory / "latin1.jsonl")), None),
        "missing_batch": (("batch", "--input", str(directory / "missing.csv")), None),
        "missing_eval": (("eval", str(directory / "missing.jsonl")), None),
        "bad_row": (("eval", str(directory / "bad.jsonl")), None),
        "no_label": (("eval", f["no_label"]), None),
        "bad_severity": (("eval", f["bad_severity"]), None),
        "empty": (("eval", str(directory / "empty.jsonl")), None),
        "candidate_same": (
            ("eval", f["jsonl"], "--model", str(directory / "same"), "--against-packaged"),
            None,
        ),
        "candidate_eager": (
            (
                "eval",
                f["jsonl"],
                "--model",
                str(directory / "eager"),
                "--against-packaged",
                "--json",
            ),
            None,
        ),
        "candidate_alone": (("eval", f["jsonl"], "--model", str(directory / "eager")), None),
        "candidate_tables": (
            ("eval", f["jsonl"], "--model", str(directory / "other-tables")),
            None,
        ),
        "candidate_missing": (("eval", f["jsonl"], "--model", str(directory / "nowhere")), None),
        "candidate_own_tables": (
            (
                "eval",
                f["jsonl"],
                "--model",
                str(directory / "own-tables"),
                "--against-packaged",
                "--json",
            ),
            None,
        ),
        "candidate_stale_tables": (
            ("eval", f["jsonl"], "--model", str(directory / "stale-tables")),
            None,
        ),
        "candidate_cv": (
            ("eval", f["severity"], "--cv", "2", "--model", str(directory / "same")),
            None,
        ),
        "against_nothing": (("eval", f["jsonl"], "--against-packaged"), None),
        "curve": (("curve", *curve, "--json"), None),
        "curve_text": (("curve", *curve), None),
        "curve_bad": (("curve", "--targets", "0.95,lots"), None),
        "curve_range": (("curve", "--targets", "1.5"), None),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(beacon, *args, stdin=stdin)
            for name, (args, stdin) in commands.items()
        }
        return Runs({name: future.result() for name, future in futures.items()}, directory)


# ------------------------------------------------------------------------ one text
def test_single_text_prints_one_result_as_json(runs: Runs, engine: Engine) -> None:
    result = json.loads(_ok(runs["single"]))
    assert set(result) == KEYS
    assert result == engine.assess("I took 30 pills").as_dict()
    assert result["level"] == "imminent"
    assert result["level_value"] == 4
    assert "behavior:attempt_now" in result["signals"]


def test_context_messages_are_given_oldest_first(runs: Runs, engine: Engine) -> None:
    result = json.loads(_ok(runs["context"]))
    assert result["level"] == "imminent"
    assert "means:access" in result["signals"]
    assert result == engine.assess("I have them right here", CONTEXT).as_dict()


def test_a_text_named_like_a_command_after_double_dash(runs: Runs, engine: Engine) -> None:
    assert json.loads(_ok(runs["dash"])) == engine.assess("batch").as_dict()


# ------------------------------------------------------------------------ batch
def test_batch_keeps_order_one_line_per_row(runs: Runs, engine: Engine) -> None:
    lines = _ok(runs["batch"]).splitlines()
    assert len(lines) == len(BATCH_TEXTS)
    results = [json.loads(line) for line in lines]
    assert all(set(result) == KEYS for result in results)
    assert results == [engine.assess(text).as_dict() for text in BATCH_TEXTS]
    assert results[0]["level"] == "imminent"
    assert "lang:es" in results[4]["signals"]


def test_batch_reads_stdin(runs: Runs, engine: Engine) -> None:
    assert [json.loads(line) for line in _ok(runs["stdin"]).splitlines()] == [
        engine.assess("I took 30 pills").as_dict(),
        engine.assess("hello").as_dict(),
    ]


def test_batch_without_the_text_column_is_refused(runs: Runs) -> None:
    _refused(runs["batch_no_column"], 2, "has no column 'text' (columns: id, message)")
    assert runs["batch_no_column"].stdout == ""


# ------------------------------------------------------------------------ eval
def test_eval_on_a_labelled_jsonl_prints_the_report(runs: Runs) -> None:
    out = _ok(runs["eval"])
    assert out.startswith("== small.jsonl")
    assert "rows: 7" in out
    assert "confusion (rows: true level none..imminent, columns: predicted)" in out
    assert _line(out, "urgent_recall").split()[1] == "1.000"  # every urgent row is a floor
    assert _line(out, "imminent_recall").split()[1] == "1.000"
    assert "under-triaged urgent: 0" in out
    assert "by language" in out
    assert "by category" in out
    assert _line(out, "imminent ").split()[1:] == ["0", "0", "0", "0", "4"]


def test_eval_json_has_bootstrap_intervals(runs: Runs) -> None:
    report = json.loads(_ok(runs["eval_json"]))
    assert report["file"] == "small.jsonl"
    assert report["rows"] == 7
    assert report["floors_failed"] == []
    for name in ("urgent_recall", "urgent_precision", "imminent_recall", "calm_high_rate"):
        entry = report["overall"][name]
        low, high = entry["ci95"]
        assert low <= entry["value"] <= high, name
        assert entry["n"] == 7
    assert report["overall"]["urgent_recall"]["value"] == 1.0
    assert report["overall"]["imminent_recall"]["value"] == 1.0
    assert sum(map(sum, report["confusion"]["rows_truth_cols_predicted"])) == 7
    assert set(report["by_language"]) == {"en", "es"}
    assert "ci95" in report["by_language"]["es"]["urgent_recall"]
    assert report["by_category"]["farewell"]["hit"] == 1.0


def test_eval_on_a_severity_csv_maps_cssrs_and_compares_llms(runs: Runs) -> None:
    out = _ok(runs["severity"])
    assert "rows: 4" in out
    assert "confusion" in out
    assert _line(out, "urgent_recall").split()[1] == "1.000"
    gpt = _line(out, "gpt_label")
    assert "urgent recall" in gpt
    assert "(rows 3)" in gpt
    report = json.loads(_ok(runs["severity_json"]))
    assert report["compare"]["gpt_label"]["rows"] == 3
    assert report["overall"]["exact"]["n"] == 4
    assert set(report["by_category"]) == {"-"}


def test_floors_that_cannot_be_met_fail_with_exit_1(runs: Runs) -> None:
    result = runs["floors_missed"]
    assert result.returncode == 1, result.stderr
    assert "FLOORS FAILED" in result.stdout
    failed = json.loads(result.stdout.split("FLOORS FAILED: ", 1)[1].splitlines()[0])
    assert [entry["floor"] for entry in failed] == ["min_exact"]
    assert failed[0]["bound"] == 1.01


def test_floors_that_are_met_pass(runs: Runs) -> None:
    assert "FLOORS FAILED" not in _ok(runs["floors_met"])


# ------------------------------------------------------------------------ candidate models
def test_a_candidate_is_rated_and_named_and_screened_against_the_packaged_model(
    runs: Runs, engine: Engine
) -> None:
    result = runs["candidate_eager"]
    assert result.returncode == 1, result.stderr  # worse than packaged: the screen fails
    report = json.loads(result.stdout)
    assert report["model_version"] not in (None, engine.model_version)
    assert report["packaged"]["model_version"] == engine.model_version
    # The urgent rows are floors either way. The eager thresholds make every calm line
    # moderate (short lines with nothing urgent around them are held there, never higher).
    assert report["overall"]["urgent_recall"]["value"] == 1.0
    confusion = report["confusion"]["rows_truth_cols_predicted"]
    assert [row[2] for row in confusion[:2]] == [2, 1]
    assert report["overall"]["calm_high_rate"]["value"] == 0.0
    worse = {entry["figure"]: entry for entry in report["worse_than_packaged"]}
    assert set(worse) == {"exact"}
    assert worse["exact"]["candidate"] == round(4 / 7, 4)  # the urgent rows alone
    assert worse["exact"]["packaged"] == report["packaged"]["figures"]["exact"] > 4 / 7
    assert report["floors_failed"] == []


def test_a_candidate_is_rated_with_the_rule_tables_beside_it(runs: Runs) -> None:
    result = runs["candidate_own_tables"]
    assert result.returncode == 1, result.stderr  # its extra floor over-calls a calm row
    report = json.loads(result.stdout)
    assert report["overall"]["calm_rated_high"] == 1  # "hi, is anyone there?", by its floor
    assert report["packaged"]["figures"]["calm_high_rate"] == 0.0  # the packaged tables
    worse = {entry["figure"] for entry in report["worse_than_packaged"]}
    assert "calm_high_rate" in worse


def test_training_keeps_the_tables_beside_a_candidate(tmp_path: Path) -> None:
    (tmp_path / CANDIDATE_TABLES).mkdir()
    (tmp_path / CANDIDATE_TABLES / "old.toml").write_text("# a table since removed\n")
    keep_tables_beside(tmp_path)
    kept = tmp_path / CANDIDATE_TABLES
    assert sorted(path.name for path in kept.iterdir()) == sorted(
        path.name for path in TABLES_DIR.glob("*.toml")
    )
    assert tables_digest(kept) == tables_digest()


def test_a_candidate_alone_is_only_reported(runs: Runs) -> None:
    out = _ok(runs["candidate_alone"])  # no screen asked: exit 0 however it rates
    assert "against the packaged model" not in out
    assert float(_line(out, "exact").split()[1]) < 1.0


def test_a_candidate_equal_to_the_packaged_model_passes_the_screen(
    runs: Runs, engine: Engine
) -> None:
    out = _ok(runs["candidate_same"])
    assert f"model: {engine.model_version}" in out
    assert f"against the packaged model {engine.model_version}:" in out
    assert out.rstrip().endswith("none worse")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("candidate_tables", "trained with other rule tables"),
        ("candidate_stale_tables", "than those beside it"),
        ("candidate_missing", "no such model folder"),
        ("candidate_cv", "--model does not apply"),
        ("against_nothing", "give it with --model DIR"),
    ],
)
def test_candidate_options_that_cannot_apply_are_refused(
    runs: Runs, name: str, message: str
) -> None:
    _refused(runs[name], 2, message)


def test_false_alarm_mode_counts_harmless_rows_rated_urgent(runs: Runs) -> None:
    report = json.loads(_ok(runs["safe_json"]))
    assert report["mode"] == "false_alarms"
    assert report["rows"] == 3
    assert 1 <= report["false_alarms"] <= 3
    assert report["false_alarm_rate"] == round(report["false_alarms"] / 3, 4)
    alarms = {entry["text_id"]: entry for entry in report["alarms"]}
    alarm = alarms[text_id("this is my last message")]
    assert alarm["level"] == "imminent"
    assert "farewell" in alarm["signals"]
    assert "last message" not in json.dumps(report)  # ids only: a report never repeats text
    assert "harmless rows rated high or imminent:" in _ok(runs["safe_text"])
    _refused(runs["safe_none"], 2, "no rows with label = 'harmless'")


# ------------------------------------------------------------------------ bad input
def test_input_that_is_not_utf8_is_refused(runs: Runs) -> None:
    _refused(runs["latin1_batch"], 2, "not a UTF-8")
    _refused(runs["latin1_eval"], 2, "not a UTF-8")
    _refused(runs["latin1_jsonl"], 2, "UTF-8")


@pytest.mark.parametrize("name", ["missing_batch", "missing_eval"])
def test_a_missing_file_is_refused(runs: Runs, name: str) -> None:
    _refused(runs[name], 2, "cannot read")
    assert "missing." in runs[name].stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad_row", "bad.jsonl:1: invalid row"),
        ("no_label", "has no label column 'level'"),
        ("bad_severity", "severity must be 0-6, not '9'"),
        ("empty", "no labelled rows"),
    ],
)
def test_malformed_labelled_files_are_refused(runs: Runs, name: str, message: str) -> None:
    _refused(runs[name], 2, message)


# ------------------------------------------------------------------------ curve
def test_curve_gives_one_point_per_target_in_sample_and_split_half(runs: Runs) -> None:
    points = json.loads(_ok(runs["curve"]))
    assert [point["urgent_recall_target"] for point in points] == [0.9, 1.0]
    for point in points:
        assert len(point["thresholds"]) == 4
        for key in ("dev", "dev_split_half"):
            figures = point[key]
            # Every urgent row of the small file is a rule floor: recall holds whatever the
            # thresholds, and every row is rated exactly once in each estimate.
            assert figures["urgent_recall"] == 1.0
            assert figures["under_triaged_urgent"] == 0
            assert 0 <= figures["calm_rated_high"] <= 3
    text = _ok(runs["curve_text"])
    assert text.splitlines()[0].startswith("target")
    assert [line.split()[0] for line in text.splitlines()[1:]] == ["0.9", "1.0"]


def test_curve_refuses_targets_that_are_not_recalls(runs: Runs) -> None:
    _refused(runs["curve_bad"], 2, "--targets must be comma-separated numbers")
    _refused(runs["curve_range"], 2, "--targets must lie in (0, 1]")
