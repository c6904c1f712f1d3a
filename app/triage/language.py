"""Which language is this message in: English, Spanish, or one the engine cannot read?

The encoder is multilingual, but the engine is trained and measured on English and Spanish only.
A message in another language must not be scored as calm just because nothing matched: it is
flagged ``lang:unsupported`` and held at least moderate so that a human who reads the language
looks at it. Detection is deliberately cheap (frequent-word counts from
``tables/languages.toml``) and biased towards English for short or mixed text, because
code-switched English chat is common and still readable.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from app.triage.rulebook import TABLES_DIR, RuleTableError, fold

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_NON_LATIN_LETTER = re.compile(r"[^\W\d_\u0000-\u024f]")
_SPANISH_MARKS = re.compile(r"[ñ¿¡]|ción\b|mente\b")


@dataclass(frozen=True, slots=True)
class LanguageTable:
    english: frozenset[str]
    spanish: frozenset[str]
    other: frozenset[str]

    def detect(self, text: str) -> str:
        """``"en"``, ``"es"`` or ``"unsupported"`` for one message (any case, accents or not)."""
        lowered = text.lower()
        words = _WORD.findall(fold(lowered))
        letters = sum(char.isalpha() for char in lowered)
        if letters and len(_NON_LATIN_LETTER.findall(lowered)) > letters / 2:
            return "unsupported"
        english = sum(word in self.english for word in words)
        spanish = sum(word in self.spanish for word in words)
        spanish += len(_SPANISH_MARKS.findall(lowered))
        other = sum(word in self.other for word in words)
        if other > max(english, spanish) and other >= 2:
            return "unsupported"
        if spanish > english:
            return "es"
        if english == 0 and spanish == 0 and len(words) >= 4:
            return "unsupported"
        return "en"


def load(path: Path = TABLES_DIR / "languages.toml") -> LanguageTable:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        lists = {name: frozenset(document[name]["words"].split()) for name in ("en", "es", "other")}
    except (OSError, KeyError, TypeError, AttributeError, tomllib.TOMLDecodeError) as exc:
        raise RuleTableError(f"{path}: {exc}") from exc
    return LanguageTable(lists["en"], lists["es"], lists["other"])
