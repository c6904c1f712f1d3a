"""Check corpus files against SCHEMA.md: `python data/triage/chat/validate.py FILE_OR_DIR...`.

`--max-chars N` raises the text length limit (600 for chat lines) for writers of long posts.

Prints per-file counts and every invalid line; exits 1 when any line is invalid.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

CATEGORIES = frozenset(
    {
        "calm",
        "support_other",
        "hard_negative",
        "distress",
        "negation",
        "passive_ideation",
        "active_ideation",
        "self_harm_urge",
        "past_abuse",
        "method_ideation",
        "intent",
        "recent_self_harm",
        "recent_attempt",
        "harm_to_others",
        "ongoing_abuse",
        "plan_time",
        "means_at_hand",
        "attempt_in_progress",
        "farewell",
        "violence_now",
        "harm_others_imminent",
        "medical_emergency",
        "retraction",
        "coded",
    }
)
FIELDS = {"text", "context", "level", "category", "lang", "third_party", "writer"}


def problems(row: object, max_chars: int = 600) -> list[str]:
    if not isinstance(row, dict):
        return ["not an object"]
    found: list[str] = []
    if set(row) != FIELDS:
        found.append(f"fields {sorted(set(row) ^ FIELDS)} missing or extra")
    text = row.get("text")
    if not isinstance(text, str) or not 1 <= len(text.strip()) <= max_chars:
        found.append(f"text must be a 1-{max_chars} char string")
    context = row.get("context")
    if not isinstance(context, list) or len(context) > 6:
        found.append("context must be a list of at most 6 strings")
    elif not all(isinstance(item, str) and item.strip() for item in context):
        found.append("context items must be non-empty strings")
    if row.get("level") not in (0, 1, 2, 3, 4) or isinstance(row.get("level"), bool):
        found.append("level must be an int 0-4")
    if row.get("category") not in CATEGORIES:
        found.append(f"unknown category {row.get('category')!r}")
    if row.get("lang") not in ("en", "es"):
        found.append("lang must be en or es")
    if not isinstance(row.get("third_party"), bool):
        found.append("third_party must be true or false")
    if not isinstance(row.get("writer"), str):
        found.append("writer must be a string")
    return found


def main(arguments: list[str]) -> int:
    max_chars = 600
    paths = []
    for argument in arguments:
        if argument.startswith("--max-chars="):
            max_chars = int(argument.split("=", 1)[1])
        else:
            paths.append(argument)
    files = [
        file
        for path in map(Path, paths)
        for file in (sorted(path.rglob("*.jsonl")) if path.is_dir() else [path])
    ]
    bad = 0
    total: Counter[str] = Counter()
    for file in files:
        rows = 0
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                print(f"{file}:{number}: invalid JSON: {error}")
                bad += 1
                continue
            found = problems(row, max_chars)
            if found:
                print(f"{file}:{number}: {'; '.join(found)}")
                bad += 1
                continue
            rows += 1
            total[f"level {row['level']}"] += 1
            total[f"lang {row['lang']}"] += 1
            total["multi-turn"] += bool(row["context"])
            total["hard_negative"] += row["category"] == "hard_negative"
        print(f"{file}: {rows} valid rows")
    print(f"total: {dict(sorted(total.items()))}; invalid lines: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
