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

# Score bands per level: the score orders results exactly as the levels do (0.5 and above ⇔ high
# or imminent); within its band a result sits where the model's urgency puts it.
_BANDS = {
    Level.none: (0.0, 0.1),
    Level.low: (0.1, 0.25),
    Level.moderate: (0.25, 0.5),
    Level.high: (0.5, 0.8),
    Level.imminent: (0.8, 1.0),
}


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


def _score(level: Level, urgency: float) -> float:
    """``urgency`` (0..1, 0.5 at the model's threshold) placed inside the level's band."""
    low, high = _BANDS[level]
    return round(low + (high - low) * min(max(urgency, 0.0), 0.999), 4)


@dataclass(frozen=True, slots=True)
class MessageAssessment:
    """One message judged alone (the unit that is cached and reused as context)."""

    findings: Findings
    signals: frozenset[str]
    level: Level
    urgency: float  # the urgent head's probability relative to its threshold


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
        urgency = sigmoid(decision.urgent - thresholds.urgent)
        return MessageAssessment(findings, frozenset(signals), level, urgency)

    def assess(self, text: str, context: Sequence[str] = ()) -> TriageResult:
        if isinstance(context, str):  # a lone string is one message, not a list of characters
            context = (context,)
        current = self.message(text)
        if not context:
            return TriageResult(
                level=current.level,
                score=_score(current.level, current.urgency),
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
        urgency = max(current.urgency, *(item.urgency for item in earlier))
        return TriageResult(
            level=level,
            score=_score(level, urgency),
            signals=public(signals),
            model_version=self.model_version,
        )
