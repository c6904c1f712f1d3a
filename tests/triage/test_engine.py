"""Properties of the engine on the real packaged model that hold whatever it was trained on:
determinism, batch = one by one, the conversation only raises a level, fail-safe languages,
scores inside their level's band, and a library that imports nothing else from ``app``.

No test here pins what the model says about a particular message (it is re-trained often);
levels are asserted only where a rule floor decides them.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

import app.triage
from app.triage import (
    Engine,
    Level,
    TriageResult,
    assess,
    assess_many,
    default_engine,
    load_engine,
)
from app.triage.corpus import DEV_JSONL, read_jsonl
from app.triage.heads import MODEL_DIR
from tests.triage.conftest import floor_of

TRIAGE_DIR = Path(app.triage.__file__).resolve().parent
_SIGNAL = re.compile(r"^[a-z0-9_]+(?::[a-z0-9_]+)*$")
BANDS = {
    Level.none: (0.0, 0.1),
    Level.low: (0.1, 0.25),
    Level.moderate: (0.25, 0.5),
    Level.high: (0.5, 0.8),
    Level.imminent: (0.8, 1.0),
}

# Messages and conversations of every kind: urgent, calm, idioms, both languages, unreadable.
ITEMS: list[tuple[str, Sequence[str]]] = [
    ("I took 30 pills", ()),
    ("ya me tomé todas las pastillas", ()),
    ("this exam is killing me 😂", ()),
    ("How do I kill a Python process?", ()),
    ("hi, is anyone there?", ()),
    ("I feel so alone lately", ()),
    ("I have them right here", ("I want to swallow all my pills",)),
    ("jk", ("I have the pills in my hand and I'm taking them now",)),
    ("no sé qué hacer", ("hola", "mi novio me dejó")),
    ("je veux mourir", ()),
    ("ok", ("hi", "I took 30 pills", "sorry")),
    ("", ()),
]


@pytest.fixture(scope="module")
def fresh() -> Engine:
    """A second engine loaded from the same files, with nothing cached."""
    return load_engine()


@pytest.fixture(scope="module")
def dev_items() -> list[tuple[str, tuple[str, ...]]]:
    return [(example.text, example.context) for example in read_jsonl(DEV_JSONL)[:300]]


# ------------------------------------------------------------------------ determinism
def test_the_same_input_twice_gives_the_same_result(engine: Engine) -> None:
    first = [engine.assess(text, context) for text, context in ITEMS]
    second = [engine.assess(text, context) for text, context in ITEMS]
    assert first == second


def test_a_freshly_loaded_engine_gives_identical_results(
    engine: Engine, fresh: Engine, dev_items: list[tuple[str, tuple[str, ...]]]
) -> None:
    assert fresh is not engine
    items = [*ITEMS, *dev_items[:40]]
    assert fresh.assess_many(items) == [engine.assess(text, context) for text, context in items]


def test_assess_many_equals_assess_one_by_one(
    fresh: Engine, dev_items: list[tuple[str, tuple[str, ...]]]
) -> None:
    """Batched encoding (one call, cold cache) gives exactly what single calls give."""
    items = [*ITEMS, *dev_items[:60]]
    fresh.clear_cache()
    batched = fresh.assess_many(items)
    fresh.clear_cache()
    assert batched == [fresh.assess(text, context) for text, context in items]


def test_the_module_functions_use_the_default_engine(engine: Engine) -> None:
    assert default_engine() is engine
    assert assess_many(ITEMS) == [assess(text, context) for text, context in ITEMS]
    assert assess("I took 30 pills") == engine.assess("I took 30 pills")


def test_assess_many_of_nothing_is_nothing(engine: Engine) -> None:
    assert engine.assess_many([]) == []


# ------------------------------------------------------------------------ the conversation
RETRACTIONS: list[tuple[str, str]] = [
    ("I have the pills in my hand and I'm taking them now", "jk"),
    ("I took 30 pills", "never mind"),
    ("I took 30 pills", "lol i'm fine"),
    ("he is hitting me right now", "forget it"),
    ("this is my last message", "ok"),
    ("ya me tomé todas las pastillas", "solo bromeaba"),
    ("me están pegando", "olvídalo"),
    ("voy a matarme esta noche", "era broma jaja"),
]


@pytest.mark.parametrize(("earlier", "later"), RETRACTIONS)
def test_a_retraction_never_lowers_an_urgent_conversation(
    engine: Engine, earlier: str, later: str
) -> None:
    floor = floor_of(engine, earlier)
    assert floor == Level.imminent  # the rows are chosen so that a floor decides
    result = engine.assess(later, [earlier])
    assert result.level >= floor
    assert result.level >= engine.assess(later).level


def test_context_never_lowers_below_an_earlier_floor(
    engine: Engine, dev_items: list[tuple[str, tuple[str, ...]]]
) -> None:
    """Over the dev split's conversations: no row is below a floor its context established."""
    items = [(text, context) for text, context in dev_items if context]
    assert len(items) >= 30
    results = engine.assess_many(items)
    for (text, context), result in zip(items, results, strict=True):
        floors = [floor_of(engine, message) for message in context]
        assert result.level >= max(floors), (text, context, result)
        assert result.level >= floor_of(engine, text), (text, result)


def test_means_at_hand_after_a_method_is_imminent(engine: Engine) -> None:
    alone = engine.assess("I have them right here")
    assert "means:access" not in alone.signals
    result = engine.assess("I have them right here", ["I want to swallow all my pills"])
    assert result.level == Level.imminent
    assert "means:access" in result.signals


def test_means_at_hand_after_a_method_in_spanish_is_imminent(engine: Engine) -> None:
    result = engine.assess("las tengo aquí", ["quiero tomarme todas las pastillas"])
    assert result.level == Level.imminent
    assert {"means:access", "lang:es"} <= set(result.signals)


def test_a_lone_string_context_is_one_message(engine: Engine) -> None:
    as_string = engine.assess("I have them right here", "I want to swallow all my pills")
    as_list = engine.assess("I have them right here", ["I want to swallow all my pills"])
    assert as_string == as_list
    assert as_string.level == Level.imminent


def test_a_long_conversation_keeps_its_most_recent_messages(engine: Engine) -> None:
    """Context is bounded (the newest messages are kept), so a huge history costs no more."""
    earlier = ["I took 30 pills", *[f"message {n}" for n in range(200)]]
    distant = engine.assess("ok", earlier)  # the pills are 201 messages back: out of reach
    assert "context:behavior:attempt_now" not in distant.signals
    recent = engine.assess("ok", [*earlier, "I took 30 pills"])
    assert recent.level == Level.imminent


# ------------------------------------------------------------------------ languages
@pytest.mark.parametrize(
    "text",
    [
        "je veux mourir",
        "ich will nicht mehr leben",
        "eu quero morrer",
        "я хочу умереть",
        "死にたい",
    ],
)
def test_an_unsupported_language_is_at_least_moderate(engine: Engine, text: str) -> None:
    result = engine.assess(text)
    assert result.level >= Level.moderate
    assert "lang:unsupported" in result.signals


def test_an_unsupported_earlier_message_holds_the_conversation_at_moderate(
    engine: Engine,
) -> None:
    assert engine.assess("ok", ["je veux mourir ce soir"]).level >= Level.moderate


@pytest.mark.parametrize(
    "text", ["hola", "estoy muy triste", "ya me tomé todas las pastillas", "me están pegando"]
)
def test_spanish_is_marked_es(engine: Engine, text: str) -> None:
    assert "lang:es" in engine.assess(text).signals


@pytest.mark.parametrize("text", ["hi there", "I took 30 pills", "this exam is killing me"])
def test_english_is_marked_en(engine: Engine, text: str) -> None:
    assert "lang:en" in engine.assess(text).signals


# ------------------------------------------------------------------------ the result
def _check_result(result: TriageResult) -> None:
    assert isinstance(result.level, Level)
    low, high = BANDS[result.level]
    assert low <= result.score <= high, result
    assert list(result.signals) == sorted(result.signals)
    assert len(set(result.signals)) == len(result.signals)
    assert all(isinstance(s, str) and _SIGNAL.match(s) for s in result.signals), result.signals
    assert result.model_version == app.triage.MODEL_VERSION


def test_every_result_is_well_formed(
    engine: Engine, dev_items: list[tuple[str, tuple[str, ...]]]
) -> None:
    results = engine.assess_many([*ITEMS, *dev_items])
    for result in results:
        _check_result(result)
    assert Level.imminent in {result.level for result in results}


def test_as_dict_is_the_wire_shape(engine: Engine) -> None:
    result = engine.assess("I took 30 pills")
    assert result.as_dict() == {
        "level": "imminent",
        "level_value": 4,
        "score": result.score,
        "signals": list(result.signals),
        "model_version": app.triage.MODEL_VERSION,
    }
    assert result.level_value == 4


def test_model_version_names_the_packaged_model(engine: Engine) -> None:
    document = json.loads((MODEL_DIR / "model.json").read_text(encoding="utf-8"))
    assert app.triage.MODEL_VERSION == document["version"] == engine.model_version
    assert re.fullmatch(r"v2-[0-9a-f]{12}", engine.model_version)


def test_unknown_module_attributes_are_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NO_SUCH_NAME"):
        getattr(app.triage, "NO_SUCH_NAME")  # noqa: B009


@pytest.mark.parametrize(
    "text",
    ["", " ", "\n\t", "x" * 50_000, "kill " * 10_000, "😂" * 5_000, "\u200b\ufeff", "\x00"],
    ids=["empty", "space", "whitespace", "50k-x", "50k-kill", "emoji", "invisible", "nul"],
)
def test_odd_texts_do_not_crash(engine: Engine, text: str) -> None:
    _check_result(engine.assess(text))
    _check_result(engine.assess("ok", [text]))


# ------------------------------------------------------------------------ a pure library
def _app_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            names.append(node.module or "")
    return [name for name in names if name == "app" or name.startswith("app.")]


@pytest.mark.parametrize("path", sorted(TRIAGE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_the_library_imports_nothing_else_from_app(path: Path) -> None:
    outside = [
        name
        for name in _app_imports(path)
        if name != "app.triage" and not name.startswith("app.triage.")
    ]
    assert not outside, f"{path.name} imports {outside}"


def test_the_import_check_sees_the_engine_modules() -> None:
    names = {path.name for path in TRIAGE_DIR.glob("*.py")}
    assert {"engine.py", "rulebook.py", "heads.py", "encoder.py", "cli.py"} <= names
    assert "app.triage.engine" in _app_imports(TRIAGE_DIR / "__init__.py")
