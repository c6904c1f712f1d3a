"""`beacon triage ...` end to end, in process (the same main() app/cli.py dispatches to)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from app.cli import main as beacon
from app.triage.datasets import DEV_CSV, XSTEST_CSV


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = beacon(["triage", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_single_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "I took 30 pills")
    assert code == 0
    result = json.loads(out)
    assert result["level"] == "imminent"
    assert set(result) == {"level", "level_value", "score", "signals", "model_version"}


def test_single_text_with_context(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "I have them right here", "--context", "I want to swallow all my pills"
    )
    assert code == 0
    assert json.loads(out)["level"] == "imminent"


def test_text_that_looks_like_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--", "batch")
    assert code == 0
    assert json.loads(out)["level"] == "none"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    assert "beacon triage batch" in out
    with pytest.raises(SystemExit) as exit_info:
        beacon(["triage", "eval", "--help"])
    assert exit_info.value.code == 0
    assert "--min-urgent-recall" in capsys.readouterr().out


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_streams_one_result_per_row_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    texts = ["hello", "I took 30 pills", "", "I feel so lonely", "I want to die"] * 3
    source = _csv(
        tmp_path / "in.csv", ["id", "message"], [[str(i), t] for i, t in enumerate(texts)]
    )
    code, out, _ = _run(
        capsys, "batch", "--input", str(source), "--text-column", "message", "--jobs", jobs
    )
    assert code == 0
    levels = [json.loads(line)["level"] for line in out.splitlines()]
    assert levels == ["none", "imminent", "none", "low", "moderate"] * 3


def test_batch_missing_column_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _csv(tmp_path / "in.csv", ["body"], [["hi"]])
    code, out, err = _run(capsys, "batch", "--input", str(source))
    assert code == 2
    assert out == ""
    assert "no column 'text'" in err
    code, _, err = _run(capsys, "batch", "--input", str(tmp_path / "missing.csv"))
    assert code == 2
    assert "cannot read" in err


def _level_file(tmp_path: Path) -> Path:
    rows = [
        ["I took 30 pills", "imminent"],
        ["I want to kill myself with pills", "3"],
        ["I want to die", "moderate"],
        ["I feel sad", "low"],
        ["what's the weather", "none"],
        ["this exam is killing me", "0"],
    ]
    return _csv(tmp_path / "levels.csv", ["text", "level"], rows)


def test_eval_level_file_with_floors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _level_file(tmp_path)
    code, out, _ = _run(capsys, "eval", str(path), "--json", "--min-urgent-recall", "0.9")
    assert code == 0
    report = json.loads(out)
    beacon_figures = report["beacon"]
    assert beacon_figures["n"] == 6
    assert beacon_figures["urgent"] == 2
    assert beacon_figures["urgent_recall"] == 1.0
    assert beacon_figures["confusion"][0][0] == 3
    assert report["floors"] == [
        {"metric": "urgent_recall", "value": 1.0, "relation": ">=", "floor": 0.9, "ok": True}
    ]
    floors = tmp_path / "floors.json"
    floors.write_text(json.dumps({"levels.csv": {"max_under_triage": -1}}), encoding="utf-8")
    code, out, _ = _run(capsys, "eval", str(path), "--floors", str(floors))
    assert code == 1
    assert "VIOLATED" in out


def test_eval_flags_rows_the_model_was_trained_on(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "eval", str(DEV_CSV), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["training_overlap"] == 710
    assert "optimistic" in report["protocol"]
    assert set(report["llms"]) == {
        "gpt_label",
        "claude_label",
        "gemini_label",
        "llama_label",
        "mistral_label",
    }
    assert report["llms"]["gpt_label"]["unlabelled_rows"] == 3


def test_eval_false_alarm_mode(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "eval",
        str(XSTEST_CSV),
        "--text-column",
        "prompt",
        "--label-column",
        "label",
        "--safe-value",
        "safe",
        "--max-false-alarm-rate",
        "0.02",
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["false_alarms"]["safe_rows"] == 250
    assert report["false_alarms"]["false_alarm_rate"] <= 0.02


def test_eval_cross_validation_retrains_per_fold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [[f"I took {n} pills tonight", "imminent"] for n in range(10, 22)]
    rows += [[f"I feel sad about exam number {n}", "low"] for n in range(12)]
    rows += [[f"I want to die, day {n}", "moderate"] for n in range(12)]
    path = _csv(tmp_path / "small.csv", ["text", "level"], rows)
    code, out, _ = _run(capsys, "eval", str(path), "--cv", "3", "--json")
    assert code == 0
    report = json.loads(out)
    assert len(report["folds"]) == 3
    assert all(fold["held_out"] == 12 for fold in report["folds"])
    assert "3-fold stratified cross-validation" in report["protocol"]
    assert report["beacon"]["urgent_recall"] == 1.0


def test_eval_bad_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path / "bad.csv", ["text", "level"], [["hi", "extreme"]])
    code, _, err = _run(capsys, "eval", str(path))
    assert code == 2
    assert "neither a level name nor 0-4" in err
    path = _csv(tmp_path / "nolabel.csv", ["text"], [["hi"]])
    code, _, err = _run(capsys, "eval", str(path))
    assert code == 2
    assert "severity (0-6) or level column" in err


def test_train_writes_a_loadable_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = _csv(
        tmp_path / "dev.csv",
        ["text", "severity"],
        [[f"post {n}: I want to die", "2"] for n in range(8)]
        + [[f"post {n}: I took 30 pills", "6"] for n in range(8)]
        + [[f"post {n}: lovely weather", "0"] for n in range(8)],
    )
    output = tmp_path / "model.json"
    code, out, _ = _run(capsys, "train", "--dev", str(dev), "--output", str(output))
    assert code == 0
    summary = json.loads(out)
    assert summary["examples"]["cssrs"] == 24
    from app.triage.engine import Engine
    from app.triage.model import load

    engine = Engine(load(output))
    assert engine.model_version == summary["model_version"]
    assert engine.assess("I took 30 pills").level.name == "imminent"
    code, out, _ = _run(capsys, "train", "--dev", str(dev), "--output", str(output), "--check")
    assert code == 0
    assert json.loads(out)["reproduced"] is True
