"""Rules + model → one TriageResult, for a message and the conversation before it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from app.triage.features import rule_terms, tokens
from app.triage.model import LinearModel, sigmoid
from app.triage.rules import CACHE_MAX_CHARS, Findings, resolve, rule_level, scan
from app.triage.types import Level, TriageResult

# Earlier messages considered (most recent first). Each is analysed once and cached, so a long
# conversation costs one new analysis per message.
MAX_CONTEXT = 50

# Signals that say nothing about a crisis on their own: the model may not raise a message that
# carries only these (or none) — "How do I kill a Python process?" stays calm whatever n-grams
# it shares with crisis posts.
_NEUTRAL_PREFIXES = ("idiom:", "time:", "retraction", "emoji:", "lang:", "_")

# Score bands: the score never contradicts the level (below 0.5 ⇔ below high).
_HIGH_FLOOR = 0.5
_IMMINENT_FLOOR = 0.8
_BELOW_HIGH_CEILING = 0.499


# The model raises a message to high only if it is long enough for n-gram evidence to mean
# something. Its threshold is calibrated for recall on forum posts; on one-line chat messages it
# overreacts to single phrases ("I think about dying every day" is C-SSRS 1, moderate), and
# there the rules — which do read "I took 30 pills" as imminent — decide. In cross-validation
# this costs no recall (the threshold re-calibrates over the posts it applies to).
MIN_WORDS_FOR_MODEL_URGENT = 20


_FIRST_PERSON = frozenset({"i", "i'm", "i've", "i'll", "i'd", "me", "my", "myself", "im"})


def first_person(words: Iterable[str]) -> bool:
    """Does the writer speak about themselves (or someone of theirs: "my friend")?"""
    return not _FIRST_PERSON.isdisjoint(words)


def crisis_content(signals: Iterable[str]) -> bool:
    """Anything about distress or risk (denials included): the model may call it moderate."""
    return any(not signal.startswith(_NEUTRAL_PREFIXES) for signal in signals)


def may_raise_urgent(
    signals: frozenset[str], pending: frozenset[str], words: int, about_self: bool
) -> bool:
    """May the model call this message high when the rules did not?

    Only if it is long enough (see MIN_WORDS_FOR_MODEL_URGENT) and it carries some crisis
    content: a confirmed signal (distress, ideation, a denial...), or — when the writer speaks
    about themselves — an ambiguous risk word the rules left pending. "How does Scar push his
    brother off a cliff?" has neither. Training uses this same test when it chooses the
    threshold, so the threshold is calibrated for exactly the messages it applies to.
    """
    if words < MIN_WORDS_FOR_MODEL_URGENT:
        return False
    return crisis_content(signals) or (about_self and crisis_content(pending))


def public(signals: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(signal for signal in signals if not signal.startswith("_")))


def _clamp(score: float, level: Level) -> float:
    if level >= Level.imminent:
        score = max(score, _IMMINENT_FLOOR)
    elif level >= Level.high:
        score = max(score, _HIGH_FLOOR)
    else:
        score = min(score, _BELOW_HIGH_CEILING)
    return round(score, 4)


@dataclass(frozen=True, slots=True)
class MessageAssessment:
    """One message judged alone (the unit that is cached and reused as context)."""

    findings: Findings
    signals: frozenset[str]
    level: Level
    score: float


class Engine:
    """A triage engine bound to one model (the packaged one, or a fold's model during CV)."""

    def __init__(self, model: LinearModel, cache_size: int = 8192) -> None:
        self.model = model
        self.model_version = model.version
        self._cached = lru_cache(maxsize=cache_size)(self._message)

    def message(self, text: str) -> MessageAssessment:
        """One message judged alone; cached unless long (see rules.CACHE_MAX_CHARS)."""
        return self._cached(text) if len(text) <= CACHE_MAX_CHARS else self._message(text)

    def clear_cache(self) -> None:
        self._cached.cache_clear()

    def _message(self, text: str) -> MessageAssessment:
        findings = scan(text)
        signals = set(resolve([findings]))
        level = rule_level(frozenset(signals))
        words = tokens(findings.text)
        decision = self.model.decision(words, rule_terms(findings))
        thresholds = self.model.thresholds
        if (
            level < Level.high
            and decision.urgent >= thresholds.urgent
            and may_raise_urgent(
                frozenset(signals), findings.pending, len(words), first_person(words)
            )
        ):
            level = Level.high
            signals.add("model:urgent")
        if (
            level < Level.moderate
            and decision.ideation >= thresholds.ideation
            and (crisis_content(signals) or crisis_content(findings.pending))
        ):
            level = Level.moderate
            signals.add("model:ideation")
        score = _clamp(sigmoid(decision.urgent - thresholds.urgent), level)
        return MessageAssessment(findings, frozenset(signals), level, score)

    def assess(self, text: str, context: Sequence[str] = ()) -> TriageResult:
        if isinstance(context, str):  # a lone string is one message, not a list of characters
            context = (context,)
        current = self.message(text)
        if not context:
            return TriageResult(
                level=current.level,
                score=current.score,
                signals=public(current.signals),
                model_version=self.model_version,
            )
        earlier = [self.message(message) for message in context[-MAX_CONTEXT:]]
        # The conversation read as a whole: an ambiguous phrase now ("I have them right here")
        # is confirmed by what was said before ("I want to swallow all my pills").
        combined = resolve([item.findings for item in (*earlier, current)])
        level = max(current.level, rule_level(combined), *(item.level for item in earlier))
        confirmed_here = current.findings.pending & combined
        signals = set(current.signals) | confirmed_here
        if level > current.level:
            signals.add("context")
            signals.update(
                f"context:{signal}"
                for signal in combined - signals
                if crisis_content((signal,)) or signal.startswith("time:")
            )
        score = max(current.score, *(item.score for item in earlier))
        return TriageResult(
            level=level,
            score=_clamp(score, level),
            signals=public(signals),
            model_version=self.model_version,
        )
