"""Language detection on chat lines: English, Spanish (with or without accents), and languages
the engine cannot read, which must come out ``unsupported`` so that they are held for a human
rather than scored as calm."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.triage import Engine
from app.triage.language import load
from app.triage.rulebook import TABLES_DIR, RuleTableError

DETECT: list[tuple[str, str]] = [
    # English: short, lower case, slang, no punctuation
    ("hi", "en"),
    ("ok", "en"),
    ("hey is anyone there", "en"),
    ("i cant do this anymore", "en"),
    ("idk what to do rn", "en"),
    ("kms", "en"),
    ("lol", "en"),
    ("I took 30 pills", "en"),
    ("this exam is killing me 😂", "en"),
    ("help me", "en"),
    ("he is hitting me", "en"),
    ("my friend is not breathing", "en"),
    ("👍", "en"),  # nothing to read: English, the default for code-switched chat
    ("", "en"),
    # Spanish, with and without accents
    ("hola", "es"),
    ("hola, hay alguien?", "es"),
    ("no puedo más", "es"),
    ("no puedo mas", "es"),
    ("ya no quiero vivir", "es"),
    ("me quiero morir", "es"),
    ("estoy muy triste", "es"),
    ("ya me tomé todas las pastillas", "es"),
    ("ya me tome todas las pastillas", "es"),
    ("quiero hablar con alguien", "es"),
    ("neta ya no aguanto", "es"),
    ("mi novio me pega", "es"),
    ("tengo miedo", "es"),
    ("¿estás ahí?", "es"),
    ("gracias", "es"),
    # Spanish lines that start with "me": the word is Spanish as much as English, and counting
    # it as English turned these into English, so that the Spanish floors never ran on them.
    ("me tomé 20 pastillas", "es"),
    ("me corté las venas", "es"),
    ("me están pegando", "es"),
    ("me siento sola", "es"),
    # Languages the engine does not read
    ("je veux mourir", "unsupported"),
    ("je suis très triste ce soir", "unsupported"),
    ("ich will nicht mehr leben", "unsupported"),
    ("ich bin so müde und traurig", "unsupported"),
    ("eu quero morrer", "unsupported"),
    ("não aguento mais", "unsupported"),
    ("я хочу умереть", "unsupported"),
    ("мне очень плохо", "unsupported"),
    ("死にたい", "unsupported"),
    ("أريد أن أموت", "unsupported"),
    ("voglio morire", "unsupported"),
    ("ik wil dood", "unsupported"),
]


@pytest.mark.parametrize(("text", "lang"), DETECT)
def test_detect(engine: Engine, text: str, lang: str) -> None:
    assert engine.languages.detect(text) == lang


def test_detection_ignores_case_and_accents(engine: Engine) -> None:
    detect = engine.languages.detect
    assert detect("YA ME TOMÉ TODAS LAS PASTILLAS") == detect("ya me tome todas las pastillas")
    assert detect("ESTOY MUY TRISTE") == "es"


def test_the_packaged_word_lists_load() -> None:
    table = load()
    assert table.english
    assert table.spanish
    assert table.other
    # Words shared by English and Spanish would tip short lines either way (see the table).
    assert not {"me", "a", "no", "te"} & (table.english | table.spanish)


def test_a_broken_word_list_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "languages.toml"
    text = (TABLES_DIR / "languages.toml").read_text(encoding="utf-8")
    broken.write_text(text.replace("[es]", "[spanish]"), encoding="utf-8")
    with pytest.raises(RuleTableError, match=r"languages\.toml"):
        load(broken)
