"""Text normalisation shared by the rules and the statistical model.

People in crisis type fast, on phones, and often in the community's coded vocabulary ("kms",
"unalive", "sewer slide") precisely because platforms filter the plain words. Rules and model both
read the normalised text, so a coded spelling carries the same weight as the plain one, and the
model is trained on exactly what inference sees.

Triage runs on every chat message, so this is written for speed: one pass for whole-word codes
(a dictionary lookup behind a single alternation) and a handful of guarded patterns for the rest.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Characters folded before lower-casing: typographic quotes, dashes and invisible joiners that
# would otherwise split "don’t" from "don't" or hide a word from a pattern.
_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201b": "'",
        "\u2032": "'",
        "`": "'",
        "\u00b4": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u200b": None,
        "\u200c": None,
        "\u200d": None,
        "\u2060": None,
        "\ufeff": None,
        "\ufe0f": None,  # emoji variation selector: "☠️" and "☠" are the same sign
    }
)

_REPEATS = re.compile(r"([a-z])\1{2,}")


_Trie = dict[str, "_Trie"]


def trie_pattern(words: Iterable[str]) -> str:
    """A regex alternation of ``words`` factored into a trie.

    Python's ``re`` tries the branches of a flat alternation one by one at every position; a
    trie rejects a position after one character test, which makes a several-hundred-word
    alternation cost about as much as a single literal.
    """
    trie: _Trie = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: _Trie) -> str:
        branches: list[str] = []
        optional = False
        for char, child in sorted(node.items()):
            if char == "":
                optional = True
                continue
            branches.append(re.escape(char) + build(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return "(?:" + body + ")?" if optional else body

    return build(trie)


# Whole-word codes, abbreviations and misspellings → the plain form the rules are written for.
_WORDS: dict[str, str] = {
    "kmsl": "lol",  # "killing myself laughing"
    "kms": "kill myself",
    "kys": "kill yourself",
    "ctb": "suicide",  # "catch the bus"
    "unalive": "kill",
    "unalives": "kills",
    "unalived": "killed",
    "unaliving": "killing",
    "kil": "kill",
    "kiling": "killing",
    "kiled": "killed",
    "od": "overdose",
    "ods": "overdoses",
    "odd": "overdosed",
    "oded": "overdosed",
    "od'd": "overdosed",
    "od'ed": "overdosed",
    "oding": "overdosing",
    "od'ing": "overdosing",
    "wanna": "want to",
    "gonna": "going to",
    "gotta": "got to",
    "tryna": "trying to",
    "im": "i'm",
    "ive": "i've",
    "idk": "i don't know",
    "idc": "i don't care",
    "rn": "right now",
    "2nite": "tonight",
    "2night": "tonight",
    "tonite": "tonight",
    "tn": "tonight",
    "tmr": "tomorrow",
    "tmrw": "tomorrow",
    "tmrow": "tomorrow",
    "tmw": "tomorrow",
    "tomoz": "tomorrow",
    "tomorow": "tomorrow",
    "tommorow": "tomorrow",
    "tommorrow": "tomorrow",
    "u": "you",
    "ur": "your",
    "pls": "please",
    "plz": "please",
    "plss": "please",
    "bc": "because",
    "bcuz": "because",
    "bcoz": "because",
    "cuz": "because",
    "coz": "because",
    "ppl": "people",
    "bf": "boyfriend",
    "gf": "girlfriend",
    "meds": "medication",
    "tylenols": "tylenol",
    "acetaminophen": "paracetamol",
    "paracetamols": "paracetamol",
    "paracetemol": "paracetamol",
    "paracetomol": "paracetamol",
    "panadol": "paracetamol",
    "cant": "can't",
    "cannot": "can't",
    "wont": "won't",
}
for _aux in (
    "do",
    "does",
    "did",
    "is",
    "are",
    "was",
    "were",
    "would",
    "could",
    "should",
    "have",
    "has",
    "had",
):
    _WORDS[_aux + "nt"] = _aux + "n't"

_WORD_CODES = re.compile(r"\b(?:" + trie_pattern(_WORDS) + r")(?![\w'])")

# "i am" → "i'm" etc., so that rules need to know one spelling ("i have to" is obligation, kept).
_I_CONTRACTIONS = {"am": "i'm", "have": "i've", "will": "i'll", "would": "i'd"}
_I_AUX = re.compile(r"\bi (am|have(?! to\b)|will|would)\b")

# Patterns that are not a single word, each behind a substring guard so that messages without
# the guard (almost all of them) skip it.
_GUARDED: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (guard, re.compile(pattern), replacement)
    for guard, pattern, replacement in (
        ("sewer", r"\bsewer[\s-]*slid(?:e|es|ing)\b", "suicide"),
        (
            "self",
            r"\bself[\s-]*(?:delete|deleting|terminate|terminating|unalive|unaliving)\b",
            "kill myself",
        ),
        ("alive", r"\bun[\s-]alive\b", "kill"),
        (" self", r"\b(my|her|him|them|your) self\b", r"\1self"),
        ("off", r"\boff(?:ing)? myself\b", "kill myself"),
        ("k1", r"\bk1ll?(ing|ed|s)?\b", r"kill\1"),
        ("k!", r"\bk!ll?(ing|ed|s)?", r"kill\1"),
        ("k*", r"\bk\*ll?(ing|ed|s)?", r"kill\1"),
        ("su", r"\bsu[i1!*]?[cs]{1,2}[i1!*y]?d[ae]l\b", "suicidal"),
        ("su", r"\bsu[i1!*]?[cs]{1,2}[i1!*y]?(?:de|ed|ied|d)\b", "suicide"),
        ("s*", r"\bs\*[i1!*]?[cs]{1,2}[i1!*y]?d[ae]l\b", "suicidal"),
        ("s*", r"\bs\*[i1!*]?[cs]{1,2}[i1!*y]?(?:de|ed|ied|d)\b", "suicide"),
        ("s/h", r"\bs/h\b", "self harm"),
        ("s.h.", r"\bs\.h\.", "self harm"),
        ("self", r"\bself[\s-]*har(?:m|ming|med)\b", "self harm"),
        ("o.d", r"\bo\.d\.?(?=\s|$)", "overdose"),
        (
            " not",
            r"\b(do|does|did|is|are|was|were|would|could|should|have|has|had)\s+not\b",
            r"\1n't",
        ),
        (" not", r"\bcan not\b", "can't"),
        (" not", r"\bwill not\b", "won't"),
        ("mg", r"\b(\d+)\s*(?:mg|mgs)\b", r"\1mg"),
        ("milligram", r"\b(\d+)\s*milligrams?\b", r"\1mg"),
        ("stor", r"\b(\d+)\s*(?:stor(?:e?y|ies|eys))\b", r"\1 floors"),
        ("floor", r"\b(\d+)\s*floors?\b", r"\1 floors"),
    )
)


def normalize(text: str) -> str:
    """Fold case, quotes, repeated letters and coded words into one canonical form."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    folded = text.translate(_CHAR_MAP).lower()
    folded = _REPEATS.sub(r"\1\1", folded)
    folded = _WORD_CODES.sub(lambda match: _WORDS[match.group(0)], folded)
    if "i " in folded:
        folded = _I_AUX.sub(lambda match: _I_CONTRACTIONS[match.group(1)], folded)
    for guard, pattern, replacement in _GUARDED:
        if guard in folded:
            folded = pattern.sub(replacement, folded)
    return " ".join(folded.split())
