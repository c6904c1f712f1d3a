"""``beacon triage ...``: triage a text or a CSV, measure quality, re-train the model (SPEC §6)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from app.triage.datasets import (
    CASES_CSV,
    DEV_CSV,
    DataError,
    open_csv,
    raise_csv_field_limit,
    training_examples,
)
from app.triage.model import MODEL_PATH, ModelFormatError

_USAGE = """usage: beacon triage "text" [--context MESSAGE ...]
       beacon triage batch --input FILE.csv [--text-column text]
       beacon triage eval FILE.csv [--cv K] [--json] [floors ...]
       beacon triage train [--dev FILE] [--cases FILE] [--output FILE] [--check]

  "text"   print one TriageResult as JSON (earlier messages of the conversation via --context,
           oldest first)
  batch    one TriageResult per CSV row, in order, as JSON Lines on stdout (streamed)
  eval     quality figures for a labelled CSV (severity 0-6, or level none..imminent / 0-4, or
           --safe-value for a false-alarm rate); `beacon triage eval --help` for options
  train    re-train the packaged model from the shared dev CSV + Beacon's own cases

Use `beacon triage -- "batch"` to triage a text that is itself a command name."""

_COMMANDS = ("batch", "eval", "train")


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args and args[0] in {"-h", "--help"}:
        print(_USAGE)
        return 0
    try:
        if args and args[0] in _COMMANDS:
            command, rest = args[0], args[1:]
            if command == "batch":
                return _batch(rest)
            if command == "eval":
                return _eval(rest)
            return _train(rest)
        if args and args[0] == "--":
            args = args[1:]
        return _single(args)
    except (DataError, ModelFormatError) as exc:
        print(f"beacon triage: {exc}", file=sys.stderr)
        return 2
    except (UnicodeDecodeError, csv.Error) as exc:
        print(f"beacon triage: input is not a UTF-8 CSV file: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `beacon triage batch ... | head`
        return 0


def _single(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="beacon triage", description="Print one TriageResult for TEXT as JSON."
    )
    parser.add_argument("text", help="the newest message")
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="MESSAGE",
        help="an earlier message of the same conversation (repeat, oldest first)",
    )
    args = parser.parse_args(argv)
    from app.triage import assess

    print(json.dumps(assess(args.text, tuple(args.context)).as_dict(), ensure_ascii=False))
    return 0


def _batch(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="beacon triage batch",
        description="Triage every row of a CSV; print one TriageResult per row as JSON Lines, "
        "in input order. Rows are streamed: memory does not grow with the file.",
    )
    parser.add_argument("--input", required=True, help="CSV file with a header row ('-': stdin)")
    parser.add_argument("--text-column", default="text", help="column to triage (default: text)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="worker processes (default 1); rows are still read, triaged and printed in order, "
        f"{_BATCH_ROWS} at a time",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    from app.triage import assess

    raise_csv_field_limit()
    source: TextIO
    if args.input == "-":
        source = sys.stdin
    else:
        try:
            source = Path(args.input).open(newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise DataError(f"cannot read {args.input}: {exc.strerror or exc}") from exc
    with source:
        reader = csv.DictReader(source)
        if args.text_column not in (reader.fieldnames or []):
            raise DataError(
                f"{args.input} has no column {args.text_column!r} "
                f"(columns: {', '.join(reader.fieldnames or [])})"
            )
        write = sys.stdout.write
        texts = (row.get(args.text_column) or "" for row in reader)
        if args.jobs == 1:
            for text in texts:
                write(json.dumps(assess(text).as_dict(), ensure_ascii=False) + "\n")
        else:
            _batch_parallel(texts, args.jobs, write)
    sys.stdout.flush()
    return 0


# Rows handed to worker processes per round: bounds memory (the file is never read ahead by more
# than this) while keeping the workers busy.
_BATCH_ROWS = 4096


def _assess_line(text: str) -> str:
    from app.triage import assess

    return json.dumps(assess(text).as_dict(), ensure_ascii=False)


def _batch_parallel(texts: Iterator[str], jobs: int, write: Callable[[str], object]) -> None:
    import multiprocessing
    from itertools import islice

    # Not "fork": forking a process that runs other threads (an embedding app, a test runner)
    # can copy a held lock into the child and hang it. Each forkserver worker loads the model.
    with multiprocessing.get_context("forkserver").Pool(jobs) as pool:
        while chunk := list(islice(texts, _BATCH_ROWS)):
            for line in pool.map(_assess_line, chunk, chunksize=max(1, len(chunk) // (jobs * 4))):
                write(line + "\n")


_FLOORS = {
    "min_urgent_recall": ("urgent_recall", ">="),
    "min_urgent_precision": ("urgent_precision", ">="),
    "min_quadratic_kappa": ("quadratic_kappa", ">="),
    "min_macro_f1": ("macro_f1", ">="),
    "max_under_triage": ("under_triage", "<="),
    "max_false_alarm_rate": ("false_alarm_rate", "<="),
}


def _eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beacon triage eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Quality figures for a labelled CSV.

Labels: a `severity` column (C-SSRS 0-6, as in the shared data) or a `level` column (none..imminent
or 0-4); another column with --label-column. With --safe-value the file is a false-alarm test:
rows whose label equals the value are scored and the share rated high or imminent is reported
(e.g. XSTest: --text-column prompt --label-column label --safe-value safe).

Figures: n, urgent recall and precision (urgent = severity >= 3 or level >= high; caught = rated
high or imminent), under-triage count, quadratic weighted kappa and macro-F1 over four classes
(none/low, moderate = severity 1-2, high = 3-4, imminent = 5-6), the confusion matrix, p50/p99 ms
per message — and the same figures for each LLM label column present (gpt_label, claude_label,
gemini_label, llama_label, mistral_label; 0-6, empty cells excluded).

Without --cv the packaged model is used and rows it was trained on are counted and flagged
(figures on them are optimistic). With --cv K the model is re-trained inside each of K
stratified, seeded folds (thresholds from an inner CV of the training folds only) and each
held-out fold is scored by rules + that fold's model.

Exit status: 0 ok, 1 a floor was violated, 2 bad input.""",
    )
    parser.add_argument("file", type=Path, help="labelled CSV")
    parser.add_argument(
        "--text-column", default="text", help="column with the text (default: text)"
    )
    parser.add_argument("--label-column", help="label column (default: severity, else level)")
    parser.add_argument(
        "--context-column",
        help="JSON list of earlier messages, oldest first (default: 'context' if present)",
    )
    parser.add_argument(
        "--safe-value",
        metavar="VALUE",
        help="false-alarm mode: score rows whose label equals VALUE (label column default: label)",
    )
    parser.add_argument("--cv", type=int, metavar="K", help="K-fold cross-validation (re-trains)")
    parser.add_argument("--seed", type=int, default=20250513, help="CV fold seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    floors = parser.add_argument_group("floors (exit 1 when violated)")
    for option, (metric, relation) in _FLOORS.items():
        floors.add_argument(
            "--" + option.replace("_", "-"),
            type=float,
            metavar="X",
            help=f"require {metric} {relation} X",
        )
    floors.add_argument(
        "--floors",
        type=Path,
        metavar="FILE",
        help='JSON file of floors per data set, e.g. {"cssrs-reddit-dev.csv": '
        '{"min_urgent_recall": 0.9}}; explicit options override it',
    )
    floors.add_argument(
        "--floors-key", help="section of --floors to use (default: the CSV's file name)"
    )
    return parser


def _load_floors(args: argparse.Namespace) -> dict[str, float]:
    floors: dict[str, float] = {}
    if args.floors is not None:
        try:
            document = json.loads(args.floors.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read floors {args.floors}: {exc}") from exc
        key = args.floors_key or args.file.name
        section = document.get(key) if isinstance(document, dict) else None
        if not isinstance(section, dict):
            raise DataError(f"{args.floors} has no section {key!r}")
        for name, value in section.items():
            if name in _FLOORS:
                floors[name] = float(value)
    for name in _FLOORS:
        value = getattr(args, name)
        if value is not None:
            floors[name] = float(value)
    return floors


def _check_floors(measured: dict[str, float], floors: dict[str, float]) -> list[dict[str, Any]]:
    checks = []
    for name, floor in sorted(floors.items()):
        metric, relation = _FLOORS[name]
        if metric not in measured:
            raise DataError(f"floor {name} does not apply to this evaluation")
        value = measured[metric]
        ok = value >= floor if relation == ">=" else value <= floor
        checks.append(
            {"metric": metric, "value": value, "relation": relation, "floor": floor, "ok": ok}
        )
    return checks


def _eval(argv: list[str]) -> int:
    args = _eval_parser().parse_args(argv)
    floors = _load_floors(args)
    labelled = args.safe_value is None
    report = _labelled_report(args) if labelled else _false_alarm_report(args)
    checks = _check_floors(report["measured"], floors)
    report["floors"] = checks
    del report["measured"]
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(_render(report))
    return 0 if all(check["ok"] for check in checks) else 1


def _false_alarm_report(args: argparse.Namespace) -> dict[str, Any]:
    from app.triage import MODEL_VERSION, assess
    from app.triage.evaluation import false_alarms, latency

    if args.cv is not None:
        raise DataError("--cv needs a severity/level label; a false-alarm set is not trained on")
    label_column = args.label_column or "label"
    rows, fields = open_csv(args.file)
    for column in (args.text_column, label_column):
        if column not in fields:
            raise DataError(f"{args.file} has no column {column!r} (columns: {', '.join(fields)})")
    texts = [row[args.text_column] or "" for row in rows if row[label_column] == args.safe_value]
    if not texts:
        raise DataError(f"no rows of {args.file} have {label_column} = {args.safe_value!r}")
    import time

    results = []
    milliseconds = []
    for text in texts:
        started = time.perf_counter()
        results.append(assess(text))
        milliseconds.append((time.perf_counter() - started) * 1000.0)
    alarms = false_alarms(texts, results)
    return {
        "file": str(args.file),
        "mode": "false_alarm",
        "model_version": MODEL_VERSION,
        "selection": f"rows with {label_column} = {args.safe_value!r}",
        "false_alarms": alarms.as_dict(),
        "latency": latency(milliseconds),
        "measured": {"false_alarm_rate": alarms.rate},
    }


def _labelled_report(args: argparse.Namespace) -> dict[str, Any]:
    from app.triage.datasets import text_id
    from app.triage.evaluation import (
        CLASS_LEGEND,
        Scored,
        cross_validate,
        latency,
        llm_figures,
        ours_figures,
        read_labeled,
        score_rows,
    )
    from app.triage.training import TrainingConfig

    labeled = read_labeled(args.file, args.text_column, args.label_column, args.context_column)
    if args.cv is not None:
        scored = cross_validate(
            labeled, args.cv, args.seed, _available_training(), TrainingConfig()
        )
        version = "re-trained per fold"
    else:
        from app.triage import MODEL_VERSION, _engine

        results, milliseconds = score_rows(labeled.rows, _engine().assess)
        trained = set(_engine().model.document.get("training", {}).get("text_ids", []))
        overlap = sum(1 for row in labeled.rows if text_id(row.text) in trained)
        scored = Scored(
            results=results,
            milliseconds=milliseconds,
            protocol="packaged model"
            + (
                f"; WARNING: {overlap} of {len(labeled.rows)} rows were used to train it, so "
                "these figures are optimistic — use --cv K"
                if overlap
                else ""
            ),
            training_overlap=overlap,
        )
        version = MODEL_VERSION
    ours = ours_figures(labeled, scored)
    llms = llm_figures(labeled)
    return {
        "file": str(args.file),
        "mode": "labelled",
        "label": labeled.label_column
        + (" (C-SSRS severity 0-6)" if labeled.label_kind == "severity" else " (level)"),
        "protocol": scored.protocol,
        "model_version": version,
        "training_overlap": scored.training_overlap,
        "classes": CLASS_LEGEND,
        "beacon": {**ours.as_dict(), "latency": latency(scored.milliseconds)},
        "llms": {
            column: {**figs.as_dict(), "unlabelled_rows": missing}
            for column, (figs, missing) in llms.items()
        },
        "folds": scored.folds,
        "measured": {
            "urgent_recall": ours.urgent_recall,
            "urgent_precision": ours.urgent_precision,
            "quadratic_kappa": ours.quadratic_kappa,
            "macro_f1": ours.macro_f1,
            "under_triage": float(ours.under_triage),
        },
    }


def _available_training() -> list[Any]:
    """The packaged model's training data, for CV folds (whatever of it is present)."""
    try:
        return training_examples()
    except DataError:
        from app.triage.datasets import case_examples, load_cases

        return case_examples(load_cases())


def _render(report: dict[str, Any]) -> str:
    lines = [f"beacon triage eval: {report['file']}"]
    if report["mode"] == "false_alarm":
        alarms = report["false_alarms"]
        lines += [
            f"model: {report['model_version']}",
            f"false-alarm test: {report['selection']}",
            f"safe rows: {alarms['safe_rows']}",
            f"rated high or imminent: {alarms['rated_high_or_imminent']} "
            f"({alarms['false_alarm_rate'] * 100:.2f}%)",
            "levels: " + ", ".join(f"{k} {v}" for k, v in alarms["levels"].items()),
            f"latency per message: p50 {report['latency']['p50_ms']} ms, "
            f"p99 {report['latency']['p99_ms']} ms",
        ]
        if alarms["examples"]:
            lines.append("false alarms:")
            lines += [f"  - {text}" for text in alarms["examples"]]
    else:
        lines += [
            f"label: {report['label']}",
            f"protocol: {report['protocol']}",
            f"model: {report['model_version']}",
            report["classes"],
            "",
            f"{'':24}{'n':>6}{'urgent':>8}{'recall':>8}{'precision':>11}{'under':>7}"
            f"{'over':>6}{'qwk':>7}{'macroF1':>9}",
        ]
        rows = [("beacon (rules+model)", report["beacon"])]
        rows += list(report["llms"].items())
        for name, figs in rows:
            lines.append(
                f"{name:24}{figs['n']:>6}{figs['urgent']:>8}{figs['urgent_recall']:>8.3f}"
                f"{figs['urgent_precision']:>11.3f}{figs['under_triage']:>7}"
                f"{figs['over_triage']:>6}{figs['quadratic_kappa']:>7.3f}{figs['macro_f1']:>9.3f}"
            )
        missing = {
            k: v["unlabelled_rows"] for k, v in report["llms"].items() if v["unlabelled_rows"]
        }
        if missing:
            lines.append(
                "(LLM rows without a label are excluded from that LLM's figures: "
                + ", ".join(f"{k} {v}" for k, v in missing.items())
                + ")"
            )
        latency = report["beacon"]["latency"]
        lines.append(
            f"beacon latency per message: p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms"
        )
        from app.triage.datasets import CLASS_NAMES

        for name, figs in rows:
            lines.append("")
            lines.append(f"confusion, {name} (rows: truth, columns: predicted)")
            lines.append(f"{'':12}" + "".join(f"{c:>10}" for c in CLASS_NAMES))
            for label, counts in zip(CLASS_NAMES, figs["confusion"], strict=True):
                lines.append(f"{label:12}" + "".join(f"{v:>10}" for v in counts))
    if report["floors"]:
        lines.append("")
        for check in report["floors"]:
            verdict = "ok" if check["ok"] else "VIOLATED"
            lines.append(
                f"floor {check['metric']} {check['relation']} {check['floor']}: "
                f"{check['value']:.4f} {verdict}"
            )
    return "\n".join(lines)


def _train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="beacon triage train",
        description="Re-train the packaged model from the shared dev CSV (CC BY 4.0, Patil, Tao, "
        "Gedhu 2025) + Beacon's own cases. Deterministic: the same inputs give the same file.",
    )
    parser.add_argument("--dev", type=Path, default=DEV_CSV, help=f"default: {DEV_CSV}")
    parser.add_argument("--cases", type=Path, default=CASES_CSV, help=f"default: {CASES_CSV}")
    parser.add_argument("--output", type=Path, default=MODEL_PATH, help=f"default: {MODEL_PATH}")
    parser.add_argument(
        "--check",
        action="store_true",
        help="re-train in memory and exit 1 if the output file differs (reproducibility check)",
    )
    args = parser.parse_args(argv)
    from app.triage.model import dumps
    from app.triage.training import train

    examples = training_examples(args.dev, args.cases)
    document = train(examples)
    text = dumps(document)
    summary = {
        "model_version": document["model_version"],
        "examples": document["training"]["sources"],
        "thresholds": document["thresholds"],
        "terms": {name: len(block) for name, block in document["blocks"].items()},
    }
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot read {args.output}: {exc.strerror or exc}") from exc
        same = current == text
        print(json.dumps({**summary, "reproduced": same}))
        return 0 if same else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(args.output)
    print(json.dumps({**summary, "output": str(args.output)}))
    return 0
