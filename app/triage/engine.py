"""Rules + encoder + heads → one TriageResult, for a message and the conversation before it.

Per message, once (then cached, since every message is later context for the next ones):
normalise, detect the language, scan the rule tables (floors, guards, marks), encode the guarded
text. Per assessment: the heads read the message with its conversation, floors set minimums,
floors that wait for the conversation (``requires``) are confirmed by what was said before, and
the result is never below what an earlier message already showed (urgency only rises; a
retraction does not lower it). Text the engine cannot read is held at least moderate.

``assess_many`` triages a whole batch with one encoder call and one matrix product: the group
committer and the partner batch API use it, off the event loop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from app.triage.encoder import Encoder
from app.triage.heads import (
    FloatArray,
    Heads,
    Sparse,
    feature_vector,
    mark_vector,
)
from app.triage.language import LanguageTable
from app.triage.normalize import normalize
from app.triage.rulebook import Rule, Rulebook, Scan, fold
from app.triage.types import Level, TriageResult

# Earlier messages considered for floors and the "never below" rule (most recent kept).
MAX_CONTEXT = 50
# Longest text read in full; longer input is cut (the API bounds text length anyway).
MAX_TEXT_CHARS = 20_000

_BANDS = {
    Level.none: (0.0, 0.1),
    Level.low: (0.1, 0.25),
    Level.moderate: (0.25, 0.5),
    Level.high: (0.5, 0.8),
    Level.imminent: (0.8, 1.0),
}
# See Engine._result: short lines in a conversation with no crisis content are held at moderate.
# On the dev and train splits this changes no row (measured); it stops "just saying hi" → imminent.
SHORT_LINE_WORDS = 5
_NEUTRAL_SIGNALS = ("emoji:laughing", "time:", "retraction", "negated:", "idiom:", "lang:")

_MODEL_SIGNAL = {
    Level.moderate: "model:ideation",
    Level.high: "model:urgent",
    Level.imminent: "model:imminent",
}


class Prepared(NamedTuple):
    """What the tables say of one message, before the encoder: shared by training and
    inference, so that the model is trained on exactly what it later reads."""

    lang: str
    scan: Scan
    words: int


def prepare(text: str, languages: LanguageTable, rulebook: Rulebook) -> Prepared:
    text = text[:MAX_TEXT_CHARS]
    lang = languages.detect(text)
    folded = fold(normalize(text))
    scan = rulebook.scan(folded, lang if lang != "unsupported" else "en")
    return Prepared(lang, scan, len(folded.split()))


@dataclass(frozen=True, slots=True)
class Reading:
    """One message read alone: the unit that is cached and reused as context."""

    lang: str
    scan: Scan
    words: int
    embedding: FloatArray
    marks: FloatArray
    level: Level  # the message's level judged alone
    probabilities: FloatArray  # the heads' P(level >= 1..4), alone
    agreed: bool  # alone, the model may rate it high+ (Heads.agreed: long texts' second view)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def _score(level: Level, p_urgent: float, threshold: float) -> float:
    """The urgent head's probability relative to its threshold, placed in the level's band."""
    urgency = 1.0 / (1.0 + np.exp(-(_logit(p_urgent) - _logit(threshold))))
    low, high = _BANDS[level]
    return round(low + (high - low) * min(max(float(urgency), 0.0), 0.999), 4)


def _model_level(
    probabilities: FloatArray, thresholds: Sequence[float], agreed: bool = True
) -> Level:
    """Chained: moderate needs the moderate head, high needs moderate and high heads, imminent
    all three (see learn.pick_thresholds); heads trained apart may disagree, and a calm line
    whose imminent head alone fires is a false alarm far more often than a crisis. Without
    ``agreed`` (a long text the chat heads see no concern in) the model stops at moderate: a
    human still looks, but it is not paged as urgent on the long-post heads' word alone."""
    level = Level.low if probabilities[0] >= thresholds[0] else Level.none
    for index in (1, 2, 3) if agreed else (1,):
        if probabilities[index] < thresholds[index]:
            break
        level = Level(index + 1)
    return level


class Engine:
    """A triage engine bound to one trained model (the packaged one, or a fold's during CV)."""

    def __init__(
        self,
        heads: Heads,
        rulebook: Rulebook,
        languages: LanguageTable,
        encoder: Encoder,
        cache_size: int = 16384,
    ) -> None:
        self.heads = heads
        self.rulebook = rulebook
        self.languages = languages
        self.encoder = encoder
        self.model_version = heads.version
        # One BLAS thread for the heads and the nearest-example product, as for the encoder:
        # triage shares two cores with the event loop and Postgres, and more threads only
        # oversubscribe them (measured: 3-4x slower nearest-example products with 2 threads).
        from threadpoolctl import ThreadpoolController

        self._blas = ThreadpoolController()
        self._readings: OrderedDict[str, Reading] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading messages
    def read_many(self, texts: Sequence[str]) -> list[Reading]:
        with self._lock:
            known = {text: self._readings.get(text) for text in texts}
        missing = [text for text, reading in known.items() if reading is None]
        if missing:
            prepared = [prepare(text, self.languages, self.rulebook) for text in missing]
            embeddings = self.encoder.encode([item.scan.masked for item in prepared])
            rows = []
            marks_list = []
            sparse: list[Sparse] = []
            empty_context = np.zeros((0, embeddings.shape[1]), dtype=np.float32)
            for item, embedding in zip(prepared, embeddings, strict=True):
                scan, words = item.scan, item.words
                marks = mark_vector(scan.signals, self.heads.marks)
                marks_list.append(marks)
                no_marks = np.zeros((0, len(marks)), dtype=np.float32)
                rows.append(feature_vector(embedding, marks, words, empty_context, no_marks))
                sparse.append(self.heads.sparse(scan.masked, ()))
            counts = [item.words for item in prepared]
            stacked = np.stack(rows)
            probabilities = self.heads.probabilities(stacked, sparse, counts)
            agreed = self.heads.agreed(stacked, sparse, counts)
            fresh: dict[str, Reading] = {}
            for index, text in enumerate(missing):
                lang, scan, words = prepared[index]
                level = max(
                    _model_level(
                        probabilities[index], self.heads.thresholds(words), bool(agreed[index])
                    ),
                    scan.floor,
                )
                if lang == "unsupported":
                    level = max(level, Level.moderate)
                fresh[text] = Reading(
                    lang=lang,
                    scan=scan,
                    words=words,
                    embedding=embeddings[index],
                    marks=marks_list[index],
                    level=level,
                    probabilities=probabilities[index],
                    agreed=bool(agreed[index]),
                )
            with self._lock:
                for text, reading in fresh.items():
                    self._readings[text] = reading
                while len(self._readings) > self._cache_size:
                    self._readings.popitem(last=False)
            known.update(fresh)
        return [known[text] for text in texts]  # type: ignore[misc]

    def clear_cache(self) -> None:
        with self._lock:
            self._readings.clear()
        self.encoder.clear_cache()

    def forget_texts(self) -> None:
        """Forget every message read, and keep the encoder's memory of words and pieces."""
        with self._lock:
            self._readings.clear()
        self.encoder.forget_texts()

    # ------------------------------------------------------------------ assessing
    def assess(self, text: str, context: Sequence[str] = ()) -> TriageResult:
        return self.assess_many([(text, context)])[0]

    def assess_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        """Triage each ``(text, context)``; context is oldest first. One encoder call in all."""
        with self._blas.limit(limits=1, user_api="blas"):
            return self._assess_many(items)

    def _assess_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        normalised = [
            (text, (context,) if isinstance(context, str) else tuple(context[-MAX_CONTEXT:]))
            for text, context in items
        ]
        unique = list(dict.fromkeys(t for text, ctx in normalised for t in (*ctx, text)))
        readings = dict(zip(unique, self.read_many(unique), strict=True))
        rows = []
        sparse: list[Sparse] = []
        words = []
        for text, context in normalised:
            current = readings[text]
            earlier = [readings[message] for message in context]
            if earlier:
                rows.append(
                    feature_vector(
                        current.embedding,
                        current.marks,
                        current.words,
                        np.stack([item.embedding for item in earlier]),
                        np.stack([item.marks for item in earlier]),
                    )
                )
                sparse.append(
                    self.heads.sparse(current.scan.masked, [item.scan.masked for item in earlier])
                )
                words.append(current.words)
        stacked = np.stack(rows) if rows else None
        with_context: Iterator[FloatArray] = iter(
            self.heads.probabilities(stacked, sparse, words) if stacked is not None else []
        )
        agreed_in_context: Iterator[np.bool_] = iter(
            self.heads.agreed(stacked, sparse, words) if stacked is not None else []
        )
        calls = []
        for text, context in normalised:
            current = readings[text]
            earlier = [readings[message] for message in context]
            if earlier:
                probabilities, agreed = next(with_context), bool(next(agreed_in_context))
            else:
                probabilities, agreed = current.probabilities, current.agreed
            model_level = self._model_call(current, earlier, probabilities, agreed)
            calls.append((current, earlier, probabilities, model_level))
        held = self._held(calls)
        results = [
            self._result(current, earlier, probabilities, model_level, index in held)
            for index, (current, earlier, probabilities, model_level) in enumerate(calls)
        ]
        return self._explain(results, [readings[text] for text, _ in normalised])

    def _held(self, calls: Sequence[tuple[Reading, list[Reading], FloatArray, Level]]) -> set[int]:
        """The calls Heads.calm_guard holds at moderate (one matrix product for the batch): the
        model's high+ calls that no floor of the message reaches, among calm examples."""
        if not self.heads.calm_guard.on:
            return set()
        candidates = [
            index
            for index, (current, _, _, model_level) in enumerate(calls)
            if model_level >= Level.high and current.scan.floor < Level.high
        ]
        if not candidates:
            return set()
        calm = self.heads.calm_neighbourhood(np.stack([calls[i][0].embedding for i in candidates]))
        return {index for index, hold in zip(candidates, calm, strict=True) if hold}

    def _explain(self, results: list[TriageResult], readings: list[Reading]) -> list[TriageResult]:
        """Add the categories of the nearest labelled examples to moderate+ results (one
        matrix product for the batch)."""
        worried = [i for i, result in enumerate(results) if result.level >= Level.moderate]
        if not worried:
            return results
        names = self.heads.similar_many(np.stack([readings[i].embedding for i in worried]))
        for i, similar in zip(worried, names, strict=True):
            if similar:
                result = results[i]
                signals = tuple(sorted({*result.signals, *(f"similar:{n}" for n in similar)}))
                results[i] = TriageResult(result.level, result.score, signals, result.model_version)
        return results

    def _model_call(
        self, current: Reading, earlier: list[Reading], probabilities: FloatArray, agreed: bool
    ) -> Level:
        model_level = _model_level(probabilities, self.heads.thresholds(current.words), agreed)
        if (
            model_level > Level.moderate
            and len(current.scan.masked.split()) <= SHORT_LINE_WORDS
            and not any(
                _is_crisis(signal) for item in (current, *earlier) for signal in item.scan.signals
            )
            and all(item.level < Level.high for item in earlier)
        ):
            # A line of a few words (counted after the guards: "can someone talk to me pls"
            # leaves "please") in a conversation where nothing is urgent and nothing the
            # tables recognise ("just saying hi", "second" after "are you there?") is where the
            # model strays furthest from its training data; it may make such a line moderate
            # (a human still looks), not high. A short line after an urgent one ("jk") is not
            # held: its earlier message was urgent.
            model_level = Level.moderate
        return model_level

    def _result(
        self,
        current: Reading,
        earlier: list[Reading],
        probabilities: FloatArray,
        model_level: Level,
        held: bool = False,
    ) -> TriageResult:
        thresholds = self.heads.thresholds(current.words)
        signals = set(current.scan.signals)
        if held:
            # Heads.calm_guard: the message's nearest training examples are calm; a human still
            # looks (moderate), and floors and the conversation below still raise it.
            model_level = Level.moderate
            signals.add("guard:similar_calm")
        signals.add(f"lang:{current.lang}")
        level = max(current.scan.floor, model_level)
        conversation = set(signals)
        for item in earlier:
            conversation |= item.scan.signals
        confirmed_level, confirmed = Rulebook.confirm(
            _pending(current, earlier), frozenset(conversation)
        )
        if confirmed:
            signals |= confirmed
            if confirmed_level > level:
                level = confirmed_level
                signals.add("context")
        if model_level > current.scan.floor and model_level >= Level.moderate:
            signals.add(_MODEL_SIGNAL[model_level])
        if current.lang == "unsupported" and level < Level.moderate:
            level = Level.moderate
        # What earlier messages established on their own: their rule floors (and, fail-safe,
        # an unreadable language). The model's view of them is already in this message's
        # features; taking its call on each short earlier line ("hola", "quick q") as a floor
        # would turn every noisy greeting into a session-long false alarm.
        earlier_level = max((_established(item) for item in earlier), default=Level.none)
        if earlier_level > level:
            level = earlier_level
            signals.add("context")
            signals.update(
                f"context:{signal}"
                for item in earlier
                if _established(item) == earlier_level
                for signal in item.scan.signals
                if not signal.startswith(("emoji:", "lang:"))
            )
        return TriageResult(
            level=level,
            score=_score(level, float(probabilities[2]), thresholds[2]),
            signals=tuple(sorted(signals)),
            model_version=self.model_version,
        )


def _is_crisis(signal: str) -> bool:
    return not signal.startswith(_NEUTRAL_SIGNALS)


def _established(reading: Reading) -> Level:
    if reading.lang == "unsupported":
        return max(reading.scan.floor, Level.moderate)
    return reading.scan.floor


def _pending(current: Reading, earlier: Iterable[Reading]) -> list[Rule]:
    pending = list(current.scan.pending)
    for item in earlier:
        pending.extend(item.scan.pending)
    return pending
