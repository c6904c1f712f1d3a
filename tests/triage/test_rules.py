"""Rules internals: the speed-ups must not change what matches."""

from __future__ import annotations

import csv
import re

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from app.triage import rules
from app.triage.datasets import CASES_CSV, DEV_CSV, XSTEST_CSV, raise_csv_field_limit
from app.triage.language import is_unsupported_language
from app.triage.normalize import normalize, trie_pattern


def _corpus() -> list[str]:
    raise_csv_field_limit()
    texts: list[str] = []
    for path, column in ((CASES_CSV, "text"), (DEV_CSV, "text"), (XSTEST_CSV, "prompt")):
        with path.open(newline="", encoding="utf-8") as handle:
            texts.extend(row[column] for row in csv.DictReader(handle))
    return texts


def _violations(text: str) -> list[str]:
    """Rules whose pattern matches although none of their keys is present."""
    normalized = normalize(text)
    masked = rules._mask(normalized, set(), frozenset(rules._ALL_KEYS))
    return [
        f"{rule.signal}: {match.group(0)!r}"
        for rule in rules._RULES
        if rule.keys
        and (match := rule.pattern.search(masked)) is not None
        and not any(key in masked for key in rule.keys)
    ]


def test_rule_keys_are_necessary_on_all_known_text() -> None:
    assert [v for text in _corpus() for v in _violations(text)] == []


_words = st.sampled_from(
    [
        "i",
        "i'm",
        "want",
        "to",
        "die",
        "kill",
        "myself",
        "pills",
        "took",
        "30",
        "tonight",
        "my",
        "friend",
        "she",
        "he",
        "hits",
        "me",
        "not",
        "never",
        "suicidal",
        "bridge",
        "jump",
        "off",
        "rope",
        "gun",
        "plan",
        "goodbye",
        "everyone",
        "💊",
        "800mg",
        "how",
        "many",
        "would",
        "it",
        "take",
        "lol",
        "😂",
        "dead",
        "going",
        "end",
        "all",
        "have",
        "them",
        "right",
        "here",
        "cut",
        "wrists",
        "tried",
        "attempt",
        "overdose",
        ",",
        ".",
        "?",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_words, max_size=14))
def test_rule_keys_are_necessary_on_generated_text(words: list[str]) -> None:
    assert _violations(" ".join(words)) == []


def test_present_keys_matches_substring_search() -> None:
    for text in _corpus()[:300]:
        normalized = normalize(text)
        present = rules._present_keys(normalized)
        assert present == frozenset(key for key in rules._ALL_KEYS if key in normalized)


def test_one_boundary_compilation_matches_the_readable_source() -> None:
    source = r"\bkill(?:ing)?\s+myself\b|\bend\s+my\s+life\b|💊"
    fast = rules._rx(source)
    slow = re.compile(source)
    for text in ("skill myself", "i will kill myself", "💊💊", "end my life", "spend my life"):
        assert [m.group(0) for m in fast.finditer(text)] == [
            m.group(0) for m in slow.finditer(text)
        ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I’m gonna kms tonite", "i'm going to kill myself tonight"),
        ("thinking about sewer slide", "thinking about suicide"),
        ("su1c1de", "suicide"),
        ("i want to unalive myself", "i want to kill myself"),
        ("Soooo tired", "soo tired"),
        ("took 800 mg of Tylenol", "took 800mg of tylenol"),
        ("Is 11 stories enough", "is 11 floors enough"),
        ("I OD'd last year", "i overdosed last year"),
        ("k!ll my self", "kill myself"),
        ("I cannot, I do not", "i can't, i don't"),
        ("I have to go", "i have to go"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_trie_pattern_matches_exactly_its_words() -> None:
    words = ["kill", "killing", "kill me", "die", "dead", "d"]
    pattern = re.compile(r"(?:" + trie_pattern(words) + r")\Z")
    for word in words:
        assert pattern.match(word)
    for other in ("kil", "dea", "killin", "x"):
        assert not pattern.match(other)


@pytest.mark.parametrize(
    ("text", "foreign"),
    [
        ("Ich will nicht mehr leben", True),
        ("я хочу умереть", True),
        ("quiero morir", True),
        ("hola", True),
        ("I want to die", False),
        ("💊💊💊", False),
        ("I’m so tired", False),
        ("I love la vida loca", False),
    ],
)
def test_language(text: str, foreign: bool) -> None:
    assert is_unsupported_language(text) is foreign


@pytest.mark.parametrize(
    ("text", "signal"),
    [
        ("I'm not suicidal", "negated:suicidal"),
        ("I would never hurt myself", "negated:self_harm"),
        ("I don't want to die", "negated:suicidal"),
        ("I've never tried to kill myself", "negated:attempt"),
    ],
)
def test_negation_suppresses_the_positive_signal(text: str, signal: str) -> None:
    signals = rules.resolve([rules.scan(text)])
    assert signal in signals
    assert not signals & {"ideation:active", "ideation:passive", "self_harm", "behavior:attempt"}
    assert rules.rule_level(signals) == rules.Level.low
