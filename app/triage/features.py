"""Features of the statistical model, shared by training (scikit-learn) and inference (pure Python).

The model reads three blocks, each computed here and nowhere else so that training and inference
cannot drift apart:

* word unigrams and bigrams of the normalised, idiom-masked text;
* character 3- to 5-grams inside word boundaries (robust to misspellings and inflections);
* the rule findings: one indicator per signal, per ambiguous phrase still pending, and per rule
  level, so the model learns how much each explainable reason is worth on labelled data.
"""

from __future__ import annotations

import re
from itertools import pairwise

from app.triage.rules import Findings, resolve, rule_level

_TOKEN = re.compile(r"[a-z0-9']+|[?!]|[^\x00-\x7f\s]")
CHAR_NGRAMS = (3, 5)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def word_terms(words: list[str]) -> list[str]:
    """Unigrams and bigrams."""
    terms = list(words)
    terms.extend([f"{first} {second}" for first, second in pairwise(words)])
    return terms


def word_char_grams(word: str) -> list[str]:
    """Character n-grams of one space-padded word (scikit-learn's ``char_wb`` analyser)."""
    low, high = CHAR_NGRAMS
    padded = f" {word} "
    length = len(padded)
    grams: list[str] = []
    for size in range(low, min(high, length) + 1):
        grams.extend([padded[start : start + size] for start in range(length - size + 1)])
    return grams


def char_terms(words: list[str]) -> list[str]:
    """Character n-grams of every word occurrence."""
    terms: list[str] = []
    for word in words:
        terms.extend(word_char_grams(word))
    return terms


def rule_terms(findings: Findings) -> list[str]:
    signals = resolve([findings])
    terms = [f"sig:{signal}" for signal in sorted(signals)]
    terms.extend(f"pending:{signal}" for signal in sorted(findings.pending))
    terms.append(f"level:{int(rule_level(signals))}")
    return terms
