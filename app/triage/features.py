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

from app.triage.rules import Findings, resolve, rule_level

_TOKEN = re.compile(r"[a-z0-9']+|[?!]|[^\x00-\x7f\s]")
CHAR_NGRAMS = (3, 5)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def word_terms(words: list[str]) -> list[str]:
    """Unigrams and bigrams."""
    terms = list(words)
    terms.extend([f"{first} {second}" for first, second in zip(words, words[1:], strict=False)])
    return terms


def char_terms(words: list[str]) -> list[str]:
    """Character n-grams of each space-padded word (scikit-learn's ``char_wb`` analyser)."""
    low, high = CHAR_NGRAMS
    terms: list[str] = []
    extend = terms.extend
    for word in words:
        padded = f" {word} "
        length = len(padded)
        for size in range(low, high + 1):
            if size > length:
                break
            extend([padded[start : start + size] for start in range(length - size + 1)])
    return terms


def rule_terms(findings: Findings) -> list[str]:
    signals = resolve([findings])
    terms = [f"sig:{signal}" for signal in sorted(signals)]
    terms.extend(f"pending:{signal}" for signal in sorted(findings.pending))
    terms.append(f"level:{int(rule_level(signals))}")
    return terms
