"""The triage contract (SPEC §2) beyond single cases: context, scores, determinism, robustness."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from app.triage import MODEL_VERSION, Level, TriageResult, assess
from app.triage.engine import Engine
from app.triage.model import load

_chat_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300
) | st.sampled_from(
    [
        "I want to die",
        "I have them right here",
        "never mind",
        "I took 30 pills",
        "this exam is killing me",
        "my friend said she'll end it tonight",
        "jk",
        "I'm not suicidal",
        "💊💊",
        "quiero morir",
        "",
    ]
)


def test_result_shape_and_model_version() -> None:
    result = assess("I want to swallow all my pills")
    assert isinstance(result, TriageResult)
    assert result.model_version == MODEL_VERSION
    assert MODEL_VERSION.startswith("triage-1+")
    payload = result.as_dict()
    assert payload["level"] == "high"
    assert payload["level_value"] == 3
    assert payload["signals"] == sorted(payload["signals"])
    assert "method:overdose" in payload["signals"]
    assert 0.5 <= payload["score"] <= 1.0


def test_spec_example_context_makes_imminent() -> None:
    alone = assess("I have them right here")
    together = assess("I have them right here", ("I want to swallow all my pills",))
    assert alone.level < Level.high
    assert together.level == Level.imminent
    assert "means:access" in together.signals
    assert "context:method:overdose" in together.signals


def test_retraction_never_lowers_the_conversation() -> None:
    earlier = ("I'm going to kill myself tonight",)
    assert assess(earlier[0]).level == Level.imminent
    for retraction in ("jk", "never mind", "lol just kidding", "forget it, I'm fine now"):
        result = assess(retraction, earlier)
        assert result.level == Level.imminent
        assert "retraction" in result.signals


def test_a_lone_string_context_is_one_message() -> None:
    as_string = assess("I have them right here", "I want to swallow all my pills")  # type: ignore[arg-type]
    as_tuple = assess("I have them right here", ("I want to swallow all my pills",))
    assert as_string == as_tuple


def test_unsupported_language_is_at_least_moderate() -> None:
    for text in ("Ich will nicht mehr leben", "no quiero vivir más", "我很想死"):
        result = assess(text)
        assert result.level >= Level.moderate
        assert "lang:unsupported" in result.signals


def test_score_orders_results_as_levels_do() -> None:
    texts = ["hello", "I feel sad", "I want to die", "I tried to kill myself", "I took 30 pills"]
    results = [assess(text) for text in texts]
    assert [r.level for r in results] == list(Level)
    scores = [r.score for r in results]
    assert scores == sorted(scores)
    bands = [(0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.8), (0.8, 1.0)]
    for result, (low, high) in zip(results, bands, strict=True):
        assert low <= result.score < high, result


def test_deterministic_across_engines() -> None:
    texts = ["I can't do this anymore", "I bought a rope", "goodbye everyone", "ok"]
    fresh = Engine(load(), cache_size=0)
    for text in texts:
        assert fresh.assess(text) == assess(text)


def test_long_conversation_is_bounded_and_only_raises() -> None:
    history = [f"message number {n}, just chatting" for n in range(500)]
    history[-3] = "I want to kill myself"
    result = assess("thanks", history)
    assert result.level == Level.moderate


def test_very_long_message() -> None:
    text = "I feel so alone. " * 5000 + "I took all my pills"
    assert assess(text).level == Level.imminent


@settings(max_examples=300, deadline=None)
@given(text=_chat_text, context=st.lists(_chat_text, max_size=6))
def test_never_fails_and_context_only_raises(text: str, context: list[str]) -> None:
    result = assess(text, context)
    assert isinstance(result.level, Level)
    assert 0.0 <= result.score <= 1.0
    assert list(result.signals) == sorted(set(result.signals))
    assert all(not signal.startswith("_") for signal in result.signals)
    assert result.level >= assess(text).level
    for earlier in context:
        assert result.level >= assess(earlier).level
