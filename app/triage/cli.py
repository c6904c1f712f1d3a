"""``beacon triage ...``: triage a text or a CSV, measure quality, re-build the corpus and model."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from app.triage import corpus
from app.triage.corpus import DataError, Example
from app.triage.encoder import EncoderMismatch
from app.triage.heads import ModelFormatError
from app.triage.rulebook import RuleTableError

if TYPE_CHECKING:
    from app.triage.engine import Engine
    from app.triage.reproduce import Comparison

_USAGE = """usage: beacon triage "text" [--context MESSAGE ...]
       beacon triage batch --input FILE.csv [--text-column text]
       beacon triage eval FILE.{csv,jsonl} [--cv K] [--json] [--floors F] [--model DIR
                          [--against-packaged]] [options]
       beacon triage train [--check] [--output DIR]
       beacon triage corpus [--with-waiting]
       beacon triage curve [--targets 0.95,0.955,0.96] [--json]

  "text"   print one TriageResult as JSON (earlier messages via --context, oldest first)
  batch    one TriageResult per CSV row, in order, as JSON Lines on stdout (streamed)
  eval     quality figures with bootstrap 95 % intervals for a labelled file: the chat corpus
           (JSON Lines, as data/triage/chat/*.jsonl), a CSV with `severity` 0-6 (C-SSRS) or
           `level`, or a false-alarm CSV (--label-column/--safe-value); --model DIR rates with a
           candidate (`train --output DIR`), --against-packaged beside the packaged model
  train    re-train the packaged model from the repository's data (--check: verify it)
  corpus   rebuild data/triage/chat/{train,dev,test}.jsonl from the writers' files
  curve    urgent recall / calm false alarms on dev for several urgent recall targets

Use `beacon triage -- "batch"` to triage a text that is itself a command name."""

_BATCH_ROWS = 256


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args and args[0] in {"-h", "--help"}:
        print(_USAGE)
        return 0
    commands = {
        "batch": _batch,
        "eval": _eval,
        "train": _train,
        "corpus": _corpus,
        "curve": _curve,
    }
    try:
        if args and args[0] in commands:
            return commands[args[0]](args[1:])
        if args and args[0] == "--":
            args = args[1:]
        return _single(args)
    except (DataError, ModelFormatError, RuleTableError, EncoderMismatch) as exc:
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


def _open(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    try:
        return Path(path).open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _chunks(rows: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _batch(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="beacon triage batch",
        description="Triage every row of a CSV; print one TriageResult per row as JSON Lines, "
        f"in input order. Rows are read and triaged {_BATCH_ROWS} at a time (one encoder call "
        "each), so memory does not grow with the file.",
    )
    parser.add_argument("--input", required=True, help="CSV file with a header row ('-': stdin)")
    parser.add_argument("--text-column", default="text", help="column to triage (default: text)")
    args = parser.parse_args(argv)
    from app.triage import assess_many

    corpus.raise_csv_field_limit()
    with _open(args.input) as source:
        reader = csv.DictReader(source)
        if args.text_column not in (reader.fieldnames or []):
            raise DataError(
                f"{args.input} has no column {args.text_column!r} "
                f"(columns: {', '.join(reader.fieldnames or [])})"
            )
        texts = (row[args.text_column] or "" for row in reader)
        for chunk in _chunks(texts, _BATCH_ROWS):
            results = assess_many([(text, ()) for text in chunk])
            sys.stdout.write(
                "".join(json.dumps(r.as_dict(), ensure_ascii=False) + "\n" for r in results)
            )
    return 0


# ---------------------------------------------------------------------------- eval
def _eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beacon triage eval",
        description="Quality figures for a labelled file, each with a bootstrap 95 % interval: "
        "confusion matrix, urgent recall and precision (urgent = high or imminent), imminent "
        "recall, calm (none/low) rated high+, per language and per category, and the LLM "
        "columns of the C-SSRS file where present.",
    )
    parser.add_argument("file", help="labelled .jsonl (chat corpus format) or .csv")
    parser.add_argument("--text-column", default="text")
    parser.add_argument(
        "--context-column",
        default="context",
        help="CSV column holding a JSON list of earlier messages (optional)",
    )
    parser.add_argument(
        "--label-column", default=None, help="CSV label column (default: severity, else level)"
    )
    parser.add_argument(
        "--safe-value",
        default=None,
        help="false-alarm mode: rows whose label equals this are harmless; "
        "reports how many are rated high or imminent",
    )
    parser.add_argument(
        "--cv",
        type=int,
        default=0,
        metavar="K",
        help="C-SSRS only: K-fold cross-validation, re-training the model per "
        "fold without its posts (slow: minutes)",
    )
    parser.add_argument(
        "--floors",
        default=None,
        help="JSON file of floors keyed by file name; exit 1 if any is missed",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="rate with the candidate model in DIR (`beacon triage train --output DIR`, which "
        "keeps the rule tables it was trained with in DIR/tables) instead of the packaged one",
    )
    parser.add_argument(
        "--against-packaged",
        action="store_true",
        help="with --model: also rate the file with the packaged model and exit 1 if the "
        "candidate is worse on any figure a floor can guard (the dev screen a candidate passes "
        "before the sealed splits are read for it)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _engine(model: str | None) -> Engine:
    """The packaged engine, or one reading the candidate heads in ``model`` with the rule
    tables kept beside them (``train --output`` copies them there) or, when it has none, the
    packaged ones; heads with tables other than those they were trained with fail to load."""
    from app.triage import Engine, default_engine
    from app.triage.heads import load as load_heads
    from app.triage.language import load as load_languages
    from app.triage.learn import CANDIDATE_TABLES, tables_digest
    from app.triage.rulebook import load as load_rulebook

    shared = default_engine()
    if model is None:
        return shared
    directory = Path(model)
    if not directory.is_dir():
        raise DataError(f"--model {model}: no such model folder")
    heads = load_heads(directory)
    tables = heads.document.get("training", {}).get("rule_tables")
    own = directory / CANDIDATE_TABLES
    if own.is_dir():
        if tables != (found := tables_digest(own)):
            raise DataError(
                f"--model {model}: trained with other rule tables than those beside it "
                f"({tables}, {own} are {found})"
            )
        rulebook, languages = load_rulebook(own), load_languages(own / "languages.toml")
        return Engine(heads, rulebook, languages, shared.encoder)
    packaged = shared.heads.document.get("training", {}).get("rule_tables")
    if tables != packaged:
        raise DataError(
            f"--model {model}: trained with other rule tables ({tables}, these are {packaged})"
        )
    return Engine(heads, shared.rulebook, shared.languages, shared.encoder)


def _read_labelled(args: argparse.Namespace) -> tuple[list[Example], dict[str, list[int | None]]]:
    path = Path(args.file)
    if path.suffix == ".jsonl":
        return corpus.read_jsonl(path), {}
    corpus.raise_csv_field_limit()
    with _open(args.file) as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        rows = list(reader)
    if args.text_column not in columns:
        raise DataError(f"{args.file} has no column {args.text_column!r}")
    label = args.label_column or ("severity" if "severity" in columns else "level")
    if label not in columns:
        raise DataError(f"{args.file} has no label column {label!r}")
    examples = []
    llms: dict[str, list[int | None]] = {
        column: [] for column in columns if column.endswith("_label") and label == "severity"
    }
    for number, row in enumerate(rows, 2):
        context: tuple[str, ...] = ()
        raw = row.get(args.context_column) or ""
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError:
                parsed = [raw]
            context = tuple(
                str(item) for item in (parsed if isinstance(parsed, list) else [parsed])
            )
        value = (row[label] or "").strip()
        if label == "severity":
            if not value.isdigit() or int(value) > 6:
                raise DataError(f"{args.file}:{number}: severity must be 0-6, not {value!r}")
            levels = corpus.severity_levels(int(value))
        else:
            levels = frozenset({corpus.level_of(value)})
        examples.append(
            Example(
                text=row[args.text_column] or "",
                context=context,
                levels=levels,
                category=row.get("category", "") or "",
                lang=row.get("lang", "") or "",
                # A C-SSRS-scaled file is forum posts: cross-validation weighs and thresholds
                # them as the posts they are (learn.fit_long).
                source="cssrs" if label == "severity" else "",
            )
        )
        for column in llms:
            cell = (row.get(column) or "").strip()
            llms[column].append(max(corpus.severity_levels(int(cell))) if cell.isdigit() else None)
    return examples, llms


def _predict(examples: Sequence[Example], engine: Engine) -> list[int]:
    results = []
    for start in range(0, len(examples), _BATCH_ROWS):
        chunk = examples[start : start + _BATCH_ROWS]
        results.extend(engine.assess_many([(e.text, e.context) for e in chunk]))
    return [int(result.level) for result in results]


def _detect_languages(examples: list[Example]) -> list[Example]:
    """Rows without a language column get the engine's detection (for per-language figures)."""
    if all(example.lang for example in examples):
        return examples
    from app.triage import default_engine

    languages = default_engine().languages
    return [
        example if example.lang else replace(example, lang=languages.detect(example.text))
        for example in examples
    ]


def _cross_validated(examples: list[Example], folds: int) -> list[int]:
    """Each fold's posts scored by a model trained without them (chat corpus + other folds)."""
    from app.triage import Engine, default_engine
    from app.triage.heads import load as load_heads
    from app.triage.heads import save
    from app.triage.learn import Featurizer, TrainingConfig, fit_chat, fold_of, train

    shared = default_engine()
    featurizer = Featurizer(shared.encoder, shared.rulebook, shared.languages)
    chat_train = corpus.read_jsonl(corpus.TRAIN_JSONL)
    chat_dev = corpus.read_jsonl(corpus.DEV_JSONL)
    config = TrainingConfig(folds=3)
    # The chat heads never see a post: fitted once, shared by every fold.
    chat = fit_chat(chat_train, chat_dev, featurizer, config)
    predicted = [0] * len(examples)
    fold_ids = [fold_of(example, folds) for example in examples]
    for fold in range(folds):
        held = [i for i, f in enumerate(fold_ids) if f == fold]
        rest = [examples[i] for i, f in enumerate(fold_ids) if f != fold]
        document, arrays = train(chat_train, chat_dev, rest, featurizer, config, chat=chat)
        with tempfile.TemporaryDirectory() as directory:
            save(document, arrays, Path(directory))
            engine = Engine(
                load_heads(Path(directory)), shared.rulebook, shared.languages, shared.encoder
            )
        results = engine.assess_many([(examples[i].text, examples[i].context) for i in held])
        for i, result in zip(held, results, strict=True):
            predicted[i] = int(result.level)
        print(f"fold {fold + 1}/{folds} done", file=sys.stderr)
    return predicted


def _false_alarm_report(args: argparse.Namespace, engine: Engine) -> dict[str, Any]:
    corpus.raise_csv_field_limit()
    with _open(args.file) as handle:
        rows = list(csv.DictReader(handle))
    label = args.label_column or "label"
    safe = [row[args.text_column] for row in rows if (row.get(label) or "") == args.safe_value]
    if not safe:
        raise DataError(f"{args.file}: no rows with {label} = {args.safe_value!r}")
    results = engine.assess_many([(text, ()) for text in safe])
    alarms = [
        {
            "text_id": corpus.text_id(text),
            "level": result.level.name,
            "signals": list(result.signals),
        }
        for text, result in zip(safe, results, strict=True)
        if result.level >= 3
    ]
    return {
        "file": Path(args.file).name,
        "model_version": engine.model_version,
        "mode": "false_alarms",
        "rows": len(safe),
        "false_alarms": len(alarms),
        "false_alarm_rate": round(len(alarms) / len(safe), 4),
        "alarms": alarms,
    }


def _eval(argv: list[str]) -> int:
    args = _eval_parser().parse_args(argv)
    if args.against_packaged and args.model is None:
        raise DataError("--against-packaged compares a candidate: give it with --model DIR")
    if args.cv and args.model is not None:
        raise DataError("--cv re-trains the heads in every fold: --model does not apply to it")
    report = _report(args, _engine(args.model))
    failures = _check_floors(report, args.floors) if args.floors else []
    report["floors_failed"] = failures
    if args.against_packaged:
        baseline = _report(args, _engine(None))
        report["packaged"] = {
            "model_version": baseline["model_version"],
            "figures": _measured(baseline),
        }
        report["worse_than_packaged"] = _worse(_measured(report), _measured(baseline))
    print(json.dumps(report, indent=1, ensure_ascii=False) if args.json else _render(report))
    return 1 if failures or report.get("worse_than_packaged") else 0


def _report(args: argparse.Namespace, engine: Engine) -> dict[str, Any]:
    if args.safe_value is not None:
        return _false_alarm_report(args, engine)
    from app.triage import metrics

    examples, llms = _read_labelled(args)
    if not examples:
        raise DataError(f"{args.file}: no labelled rows")
    examples = _detect_languages(examples)
    predicted = _cross_validated(examples, args.cv) if args.cv else _predict(examples, engine)
    return {
        "file": Path(args.file).name,
        "cv": args.cv or None,
        # The CV re-trains every fold's heads from the repository: no one model rated it.
        "model_version": None if args.cv else engine.model_version,
        **metrics.report(examples, predicted, llms),
    }


# Which way each figure that a floor can guard is better (`_measured`'s names); the rest
# (kappa, macro-F1, per-language calm rates) are shown but do not fail a screen.
_HIGHER_IS_BETTER = {
    "urgent_recall": True,
    "urgent_precision": True,
    "imminent_recall": True,
    "exact": True,
    "calm_high_rate": False,
    "under_triage": False,
    "false_alarm_rate": False,
}


def _worse(candidate: dict[str, float], packaged: dict[str, float]) -> list[dict[str, Any]]:
    """The figures on which the candidate is worse than the packaged model on the same rows."""
    out = []
    for name, value in candidate.items():
        higher = _HIGHER_IS_BETTER.get(name)
        if higher is None and name.startswith("urgent_recall_"):
            higher = True
        if higher is None or name not in packaged:
            continue
        before = packaged[name]
        if (value < before) if higher else (value > before):
            out.append({"figure": name, "candidate": value, "packaged": before})
    return out


def _measured(report: dict[str, Any]) -> dict[str, float]:
    if report.get("mode") == "false_alarms":
        return {"false_alarm_rate": report["false_alarm_rate"]}
    overall = report["overall"]
    values = {
        name: overall[name]["value"]
        for name in (
            "urgent_recall",
            "urgent_precision",
            "imminent_recall",
            "calm_high_rate",
            "exact",
        )
    }
    values["under_triage"] = overall["under_triaged_urgent"]
    values["quadratic_kappa"] = overall["quadratic_kappa"]
    values["macro_f1"] = overall["macro_f1"]
    for lang, figures in report["by_language"].items():
        values[f"urgent_recall_{lang}"] = figures["urgent_recall"]["value"]
        values[f"calm_high_rate_{lang}"] = figures["calm_high_rate"]["value"]
    return values


def _check_floors(report: dict[str, Any], floors_path: str) -> list[dict[str, Any]]:
    try:
        floors = json.loads(Path(floors_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read floors {floors_path}: {exc}") from exc
    mine = floors.get(report["file"] + (f"#cv{report['cv']}" if report.get("cv") else ""), {})
    measured = _measured(report)
    failures = []
    for key, bound in mine.items():
        kind, _, name = key.partition("_")
        value = measured.get(name)
        if value is None or value != value:
            failures.append({"floor": key, "bound": bound, "measured": None})
        elif (kind == "min" and value < bound) or (kind == "max" and value > bound):
            failures.append({"floor": key, "bound": bound, "measured": value})
    return failures


def _fmt(entry: dict[str, Any]) -> str:
    low, high = entry["ci95"]
    return f"{entry['value']:.3f} [{low:.3f}, {high:.3f}]"


def _render(report: dict[str, Any]) -> str:
    lines = [f"== {report['file']}" + (f" ({report['cv']}-fold CV)" if report.get("cv") else "")]
    if report.get("model_version"):
        lines.append(f"model: {report['model_version']}")
    if report.get("mode") == "false_alarms":
        lines.append(
            f"harmless rows rated high or imminent: {report['false_alarms']} of "
            f"{report['rows']} ({report['false_alarm_rate']:.2%})"
        )
    else:
        overall = report["overall"]
        lines.append(f"rows: {report['rows']}")
        for name in (
            "urgent_recall",
            "urgent_precision",
            "imminent_recall",
            "calm_high_rate",
            "exact",
        ):
            lines.append(f"  {name:<18} {_fmt(overall[name])}")
        lines.append(
            f"  under-triaged urgent: {overall['under_triaged_urgent']};  calm rated "
            f"high+: {overall['calm_rated_high']};  kappa {overall['quadratic_kappa']}"
            f";  macro-F1 {overall['macro_f1']}"
        )
        lines.append("confusion (rows: true level none..imminent, columns: predicted)")
        for name, row in zip(
            ("none", "low", "moderate", "high", "imminent"),
            report["confusion"]["rows_truth_cols_predicted"],
            strict=True,
        ):
            lines.append(f"  {name:<9}" + "".join(f"{count:>6}" for count in row))
        lines.append("by language")
        for lang, figures in report["by_language"].items():
            lines.append(
                f"  {lang:<12} rows {figures['rows']:>5}  urgent recall "
                f"{_fmt(figures['urgent_recall'])}  imminent {_fmt(figures['imminent_recall'])}"
                f"  calm high+ {_fmt(figures['calm_high_rate'])}"
            )
        lines.append(
            "by category (hit: urgent called high+, moderate called moderate+, calm not "
            "called high+)"
        )
        for name, figures in report["by_category"].items():
            low, high = figures["hit_ci95"]
            lines.append(
                f"  {name:<22} rows {figures['rows']:>5}  hit {figures['hit']:.3f} "
                f"[{low:.3f}, {high:.3f}]"
            )
        for name, figures in report.get("compare", {}).items():
            lines.append(
                f"  {name:<14} urgent recall {_fmt(figures['urgent_recall'])}  precision "
                f"{_fmt(figures['urgent_precision'])}  (rows {figures['rows']})"
            )
    if report.get("floors_failed"):
        lines.append(f"FLOORS FAILED: {json.dumps(report['floors_failed'])}")
    if "packaged" in report:
        packaged = report["packaged"]["figures"]
        lines.append(f"against the packaged model {report['packaged']['model_version']}:")
        for name, value in _measured(report).items():
            if name in packaged:
                lines.append(f"  {name:<22} {value:>8.4f}  packaged {packaged[name]:>8.4f}")
        worse = [entry["figure"] for entry in report["worse_than_packaged"]]
        verdict = f"WORSE THAN PACKAGED: {json.dumps(worse)}" if worse else "none worse"
        lines.append(verdict)
    return "\n".join(lines)


# ---------------------------------------------------------------------------- train, corpus
def _train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="beacon triage train",
        description="Re-train the heads from data/triage (chat train/dev splits and the C-SSRS "
        "posts) and the rule tables. Deterministic: --check re-trains into a temporary folder "
        "and fails if the result differs from the packaged model.",
    )
    parser.add_argument("--output", default=None, help="model folder (default: the packaged one)")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    from app.triage.heads import MODEL_DIR
    from app.triage.learn import build, keep_tables_beside

    def log(line: str) -> None:
        print(line, file=sys.stderr)

    if args.check:
        with tempfile.TemporaryDirectory() as directory:
            build(Path(directory), log=log)
            comparison = _compare_with_packaged(MODEL_DIR, Path(directory))
        report = {"check": "ok" if comparison.reproduces else "failed", **comparison.as_dict()}
        print(json.dumps(report))
        if not comparison.reproduces:
            print(
                "beacon triage: the re-trained model does not reproduce the packaged one: "
                "run `beacon triage train`",
                file=sys.stderr,
            )
            return 1
        return 0
    output = Path(args.output) if args.output else MODEL_DIR
    version = build(output, log=log)
    if output.resolve() != MODEL_DIR.resolve():
        keep_tables_beside(output)
    print(json.dumps({"model_version": version}))
    return 0


def _compare_with_packaged(packaged: Path, retrained: Path) -> Comparison:
    """Same model up to the floating-point differences between CPU families (see reproduce)."""
    import numpy as np

    from app.triage import reproduce
    from app.triage.encoder import Encoder
    from app.triage.engine import Engine
    from app.triage.heads import load
    from app.triage.language import load as load_languages
    from app.triage.rulebook import load as load_rulebook

    old, new = load(packaged), load(retrained)
    with (
        np.load(packaged / "heads.npz", allow_pickle=False) as old_file,
        np.load(retrained / "heads.npz", allow_pickle=False) as new_file,
    ):
        old_arrays = {name: old_file[name] for name in old_file.files}
        new_arrays = {name: new_file[name] for name in new_file.files}
    rulebook, languages, encoder = load_rulebook(), load_languages(), Encoder()
    engines = (Engine(old, rulebook, languages, encoder), Engine(new, rulebook, languages, encoder))
    dev = corpus.read_jsonl(corpus.DEV_JSONL)
    return reproduce.compare(old, old_arrays, new, new_arrays, engines, dev)


def _corpus(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="beacon triage corpus",
        description="Deduplicate the writers' files and rebuild the train/dev/sealed-test "
        "splits. Writers listed in data/triage/chat/waiting.txt are left out, so that the "
        "splits are the ones the packaged model was trained on.",
    )
    parser.add_argument(
        "--with-waiting",
        action="store_true",
        help="include the waiting writers (a data round: then train, screen and gate a model)",
    )
    args = parser.parse_args(argv)
    from app.triage.splits import build

    print(json.dumps(build(with_waiting=args.with_waiting), indent=1))
    return 0


def _curve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="beacon triage curve",
        description="Fit the chat heads on the train split once, then for each urgent recall "
        "target pick thresholds on dev as `train` does and print dev's urgent recall, imminent "
        "recall and calm rated high+: in-sample, and with thresholds picked on one half of dev "
        "and applied to the other. Never reads the sealed test splits.",
    )
    parser.add_argument("--targets", default="0.95,0.955,0.96,0.965,0.97")
    parser.add_argument("--train", default=str(corpus.TRAIN_JSONL))
    parser.add_argument("--dev", default=str(corpus.DEV_JSONL))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        targets = [float(value) for value in args.targets.split(",")]
    except ValueError as exc:
        raise DataError(f"--targets must be comma-separated numbers: {exc}") from exc
    if not all(0 < target <= 1 for target in targets):
        raise DataError("--targets must lie in (0, 1]")
    from app.triage import Engine, default_engine
    from app.triage.curve import points
    from app.triage.learn import Featurizer

    shared = default_engine()
    featurizer = Featurizer(shared.encoder, shared.rulebook, shared.languages)
    curve = points(
        corpus.read_jsonl(Path(args.train)),
        corpus.read_jsonl(Path(args.dev)),
        shared.heads,
        lambda heads: Engine(heads, shared.rulebook, shared.languages, shared.encoder),
        featurizer,
        targets,
    )
    if args.json:
        print(json.dumps(curve, indent=1))
        return 0
    print("target  dev: recall imminent calm-high+ (n)   split-half: the same")
    for point in curve:
        row = [f"{point['urgent_recall_target']:<7}"]
        for key in ("dev", "dev_split_half"):
            f = point[key]
            row.append(
                f"{f['urgent_recall']:.3f} {f['imminent_recall']:.3f} "
                f"{f['calm_high_rate']:.3f} ({f['calm_rated_high']})"
            )
        print("   ".join(row))
    return 0
