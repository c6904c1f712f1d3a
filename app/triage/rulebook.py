"""The rule tables (``tables/*.toml``): loaded, validated and applied by one small interpreter.

Rules are data with two jobs only, so that the learned model decides everything in between:

- **floors** — high-precision patterns that set a minimum level whatever the model says: an
  attempt just made, method plus time, someone hurting the writer now. A floor may require
  signals found elsewhere in the conversation (``requires``), which is how "I have them right
  here" becomes imminent after "I want to swallow all my pills".
- **guards** — false-alarm guards for idioms and homonyms ("this exam is killing me", "kill the
  process", "dead 😂"): the matched span is masked before the model reads the message, so the
  rest of the message is still judged ("this exam is killing me and honestly I want to die" keeps
  its second half).

``marks`` only name what a message contains (``method:overdose``, ``time:tonight``,
``third_party``) for explanations and as features of the model; they never set a level.

Every pattern is matched against the normalised, accent-folded text (see ``fold``), so tables
are written in lower case without accents. ``unless`` patterns veto a match when found in the
``unless_window`` characters before it (negation: "I would never take the pills"); ``unless_any``
vetoes it when found anywhere in the message (laughter after "I'll kill my brother 😂").
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.triage.types import Level

TABLES_DIR = Path(__file__).resolve().parent / "tables"
RULE_FILES = ("vocab.toml", "floors.toml", "guards.toml", "marks.toml")
LANGUAGES = ("en", "es")

_KINDS = {"floor": "floors.toml", "guard": "guards.toml", "mark": "marks.toml"}
_ALLOWED = {
    "floor": {"id", "lang", "patterns", "unless", "unless_any", "unless_window", "level"}
    | {"signals", "requires", "note"},
    "guard": {"id", "lang", "patterns", "unless", "unless_any", "unless_window", "signals"}
    | {"note"},
    "mark": {"id", "lang", "patterns", "unless", "unless_any", "unless_window", "signals"}
    | {"note"},
}
_SIGNAL = re.compile(r"^[a-z_]+(?::[a-z0-9_]+)?$")
_VOCAB_REF = re.compile(r"\{([a-z_]+)\}")


class RuleTableError(ValueError):
    """A rule table is malformed: the engine refuses to start rather than triage wrongly."""


def fold(text: str) -> str:
    """Lower-cased text without accents ("tomé" → "tome"), the form every pattern is written in."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn")


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    id: str
    languages: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    unless: tuple[re.Pattern[str], ...]
    unless_any: tuple[re.Pattern[str], ...]
    unless_window: int
    signals: tuple[str, ...]
    level: Level
    requires: frozenset[str]
    # All patterns as one alternation: one scan of the text per rule, not one per pattern
    # (triage runs the tables on every message; most rules match nothing).
    combined: re.Pattern[str]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where this rule matches ``text`` (already folded), negated matches left out."""
        found: list[tuple[int, int]] = []
        for match in self.combined.finditer(text):
            if not found and any(veto.search(text) for veto in self.unless_any):
                return []
            # A pattern that opens with optional words and ``\s*`` can start its match on the
            # space after a negation ("no| me están pegando"); the veto must still see "no ".
            start = match.start()
            while start < match.end() and text[start].isspace():
                start += 1
            before = text[max(0, start - self.unless_window) : start]
            if any(veto.search(before) for veto in self.unless):
                continue
            found.append(match.span())
        return found


@dataclass(frozen=True, slots=True)
class Scan:
    """What the tables found in one message."""

    signals: frozenset[str]  # from floors, guards and marks that matched
    floor: Level  # the highest floor that matched without needing other messages
    masked: str  # the folded text with guarded spans blanked out, what the model reads
    pending: tuple[Rule, ...]  # floors waiting for ``requires`` signals from the conversation


class Rulebook:
    """All tables, compiled once; ``scan`` is pure and cheap (one pass per pattern)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._by_lang = {
            lang: tuple(rule for rule in self.rules if lang in rule.languages) for lang in LANGUAGES
        }
        self.mark_signals = tuple(
            sorted({signal for rule in self.rules for signal in rule.signals})
        )

    def scan(self, folded: str, lang: str) -> Scan:
        rules = self._by_lang.get(lang, self._by_lang["en"])
        signals: set[str] = set()
        floor = Level.none
        pending: list[Rule] = []
        masked = folded
        for rule in rules:
            spans = rule.spans(folded)
            if not spans:
                continue
            if rule.kind == "guard":
                for start, end in spans:
                    masked = masked[:start] + " " * (end - start) + masked[end:]
            if rule.kind == "floor" and rule.requires:
                pending.append(rule)
                continue
            signals.update(rule.signals)
            if rule.kind == "floor":
                floor = max(floor, rule.level)
        return Scan(frozenset(signals), floor, " ".join(masked.split()), tuple(pending))

    @staticmethod
    def confirm(pending: Iterable[Rule], conversation: frozenset[str]) -> tuple[Level, set[str]]:
        """Floors whose ``requires`` the conversation's signals now satisfy."""
        level = Level.none
        signals: set[str] = set()
        for rule in pending:
            if rule.requires & conversation:
                level = max(level, rule.level)
                signals.update(rule.signals)
        return level, signals


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise RuleTableError(f"{where}: expected a string or a list of strings")


def _expand(pattern: str, vocab: Mapping[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in vocab:
            raise RuleTableError(f"{where}: pattern uses {{{name}}}, which vocab.toml lacks")
        return f"(?:{vocab[name]})"

    return _VOCAB_REF.sub(replace, pattern)


def _compile(
    patterns: Iterable[str], vocab: Mapping[str, str], where: str
) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        letters = re.sub(r"\\.", "", pattern)  # escapes such as \\S may be upper case
        if letters != fold(letters.lower()):
            raise RuleTableError(f"{where}: pattern {pattern!r} must be lower case, no accents")
        try:
            compiled.append(re.compile(_expand(pattern, vocab, where)))
        except re.error as exc:
            raise RuleTableError(f"{where}: invalid pattern {pattern!r}: {exc}") from exc
    return tuple(compiled)


def _rule(kind: str, entry: Mapping[str, Any], vocab: Mapping[str, str], source: str) -> Rule:
    where = f"{source} [{kind}] {entry.get('id', '?')}"
    unknown = set(entry) - _ALLOWED[kind]
    if unknown:
        raise RuleTableError(f"{where}: unknown keys {sorted(unknown)}")
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise RuleTableError(f"{where}: every rule needs an id")
    languages = frozenset(_strings(entry.get("lang", list(LANGUAGES)), where))
    if not languages <= set(LANGUAGES):
        raise RuleTableError(f"{where}: lang must be among {LANGUAGES}")
    patterns = _compile(_strings(entry.get("patterns", []), where), vocab, where)
    if not patterns:
        raise RuleTableError(f"{where}: no patterns")
    signals = _strings(entry.get("signals", []), where)
    if kind != "guard" and not signals:
        raise RuleTableError(f"{where}: a {kind} must emit at least one signal")
    for signal in signals:
        if not _SIGNAL.match(signal):
            raise RuleTableError(f"{where}: signal {signal!r} is not snake_case[:name]")
    level = Level.none
    if kind == "floor":
        name = entry.get("level")
        if name not in ("moderate", "high", "imminent"):
            raise RuleTableError(f"{where}: a floor's level is moderate, high or imminent")
        level = Level[name]
    window = entry.get("unless_window", 40)
    if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= 200:
        raise RuleTableError(f"{where}: unless_window must be an int 0-200")
    return Rule(
        kind=kind,
        id=rule_id,
        languages=languages,
        patterns=patterns,
        unless=_compile(_strings(entry.get("unless", []), where), vocab, where),
        unless_any=_compile(_strings(entry.get("unless_any", []), where), vocab, where),
        unless_window=window,
        signals=signals,
        level=level,
        requires=frozenset(_strings(entry.get("requires", []), where)),
        combined=re.compile("|".join(f"(?:{pattern.pattern})" for pattern in patterns)),
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleTableError(f"{path}: {exc}") from exc


def load(directory: Path = TABLES_DIR) -> Rulebook:
    vocab = _read(directory / "vocab.toml").get("vocab", {})
    if not isinstance(vocab, dict) or not all(isinstance(v, str) for v in vocab.values()):
        raise RuleTableError("vocab.toml: [vocab] maps names to pattern strings")
    rules: list[Rule] = []
    for kind, filename in _KINDS.items():
        path = directory / filename
        document = _read(path)
        extra = set(document) - {kind}
        if extra:
            raise RuleTableError(f"{path}: only [[{kind}]] tables belong here, not {extra}")
        entries = document.get(kind, [])
        if not isinstance(entries, list):
            raise RuleTableError(f"{path}: [[{kind}]] must be an array of tables")
        rules.extend(_rule(kind, entry, vocab, path.name) for entry in entries)
    ids = [rule.id for rule in rules]
    duplicated = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
    if duplicated:
        raise RuleTableError(f"duplicate rule ids: {duplicated}")
    return Rulebook(rules)
