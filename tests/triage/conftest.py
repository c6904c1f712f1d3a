"""One shared engine for the triage tests, and helpers that look inside the rule tables.

The engine is the process-wide ``default_engine()`` (the packaged model, loaded once): building
one per test would cost a second each and test nothing more. Nothing here reads ``../shared``:
every file the tests use is in the repository.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from app.triage import Engine, Level, default_engine
from app.triage.engine import prepare
from app.triage.heads import MODEL_DIR
from app.triage.learn import Featurizer, TrainingConfig, _document
from app.triage.normalize import normalize
from app.triage.rulebook import Rule, Rulebook, fold


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The process-wide engine, as the files on disk are now: when the packaged model was
    re-trained after another test loaded it (a long run, work going on beside it), the shared
    engine is reloaded so that these tests judge the model that is packaged."""
    shared = default_engine()
    if shared.model_version != packaged_version():
        default_engine.cache_clear()
        shared = default_engine()
    return shared


def packaged_version() -> str:
    document = json.loads((MODEL_DIR / "model.json").read_text(encoding="utf-8"))
    version: str = document["version"]
    return version


def scan_lang(engine: Engine, text: str) -> str:
    """The rule language a message is scanned in (unsupported text is scanned as English)."""
    lang = engine.languages.detect(text)
    return lang if lang != "unsupported" else "en"


def folded(text: str) -> str:
    return fold(normalize(text))


def rules_for(engine: Engine, text: str) -> list[Rule]:
    lang = scan_lang(engine, text)
    return [rule for rule in engine.rulebook.rules if lang in rule.languages]


def matched_ids(engine: Engine, text: str) -> set[str]:
    """Ids of the floors, guards and marks whose patterns match ``text`` (vetoes applied)."""
    scanned = folded(text)
    return {rule.id for rule in rules_for(engine, text) if rule.spans(scanned)}


def rule(engine: Engine, rule_id: str) -> Rule:
    found = [item for item in engine.rulebook.rules if item.id == rule_id]
    assert len(found) == 1, f"no rule {rule_id!r} in the tables"
    return found[0]


def without(item: Rule, vetoes: Iterable[str]) -> Rule:
    """The same rule with some of its vetoes (``unless``/``unless_any``) taken away."""
    removed = set(vetoes)
    return dataclasses.replace(
        item,
        unless=() if "unless" in removed else item.unless,
        unless_any=() if "unless_any" in removed else item.unless_any,
    )


def floor_of(engine: Engine, text: str) -> Level:
    """What a message's rule floors establish on their own (including a floor that needs
    signals when the message itself supplies them)."""
    scan = prepare(text, engine.languages, engine.rulebook).scan
    confirmed, _ = Rulebook.confirm(scan.pending, scan.signals)
    return max(scan.floor, confirmed)


def conversation_floor(engine: Engine, text: str, context: Sequence[str]) -> Level:
    """What the rule floors of a whole conversation establish, floors that wait for signals
    from other messages included (the engine's ``requires``)."""
    scans = [
        prepare(message, engine.languages, engine.rulebook).scan for message in (*context, text)
    ]
    signals = frozenset().union(*(scan.signals for scan in scans))
    pending = [rule for scan in scans for rule in scan.pending]
    confirmed, _ = Rulebook.confirm(pending, signals)
    return max(confirmed, *(scan.floor for scan in scans))


def trained_document(engine: Engine, config: TrainingConfig) -> dict[str, Any]:
    """What ``beacon triage train`` would write to model.json for ``config``, around the
    packaged heads (for the "recorded only when on" checks of each optional setting)."""
    featurizer = Featurizer(engine.encoder, engine.rulebook, engine.languages)
    return _document(engine.heads.chat, engine.heads.long, featurizer, config, [], [], [])
