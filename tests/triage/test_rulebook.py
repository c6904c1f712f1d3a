"""The rule tables: they load and validate, every rule does what its id says in both languages,
its vetoes (``unless``: negation just before; ``unless_any``: games, films, laughter anywhere)
really veto, and a malformed table stops the engine with a message naming the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.triage import Engine, Level
from app.triage.engine import prepare
from app.triage.rulebook import TABLES_DIR, Rulebook, RuleTableError, fold, load
from tests.triage.conftest import folded, matched_ids, rule, scan_lang, without

MATCH = "match"
UNLESS = "unless"  # the rule's pattern matches, its `unless` (negation before it) vetoes
UNLESS_ANY = "unless_any"  # the pattern matches, `unless_any` (anywhere in the text) vetoes

# (rule id, message, expectation). A negated row is only a test of the veto if the rule would
# match without it, which test_negated_cases_are_vetoed_by_that_veto checks.
CASES: list[tuple[str, str, str]] = [
    # ---------------------------------------------------------------- attempt just made
    ("overdose_taken", "I took 30 pills", MATCH),
    ("overdose_taken", "i just took all my sleeping pills", MATCH),
    ("overdose_taken", "I've swallowed a whole bottle of tylenol", MATCH),
    ("overdose_taken", "i just drank bleach", MATCH),
    ("overdose_taken", "i overdosed", MATCH),
    ("overdose_taken", "what if I took 30 pills", UNLESS),
    ("overdose_taken", "how many would kill me if i took 20 pills", UNLESS),
    ("overdose_taken_es", "ya me tomé todas las pastillas", MATCH),
    ("overdose_taken_es", "me tome todas mis pastillas", MATCH),
    ("overdose_taken_es", "me tomé 20 pastillas", MATCH),
    ("overdose_taken_es", "no me tomé todas las pastillas", UNLESS),
    ("overdose_taken_es", "casi me tome todas las pastillas", UNLESS),
    ("attempt_in_progress_en", "the car is running and the garage door is shut", MATCH),
    ("attempt_in_progress_en", "i'm standing on the ledge", MATCH),
    ("attempt_in_progress_en", "the rope is tied around my neck", MATCH),
    ("attempt_in_progress_en", "I'm on the train tracks", MATCH),
    ("attempt_in_progress_en", "gun is in my mouth", MATCH),
    ("attempt_in_progress_en", "i dreamed the rope is around my neck", UNLESS),
    ("attempt_in_progress_en", "the rope is ready in the game lol", UNLESS_ANY),
    ("attempt_in_progress_es", "estoy parada en la orilla del puente", MATCH),
    ("attempt_in_progress_es", "la soga ya está lista", MATCH),
    ("attempt_in_progress_es", "me corté las venas", MATCH),
    ("attempt_in_progress_es", "soñé que la soga ya esta lista", UNLESS),
    ("attempt_in_progress_es", "la soga ya esta lista en el juego", UNLESS_ANY),
    # ---------------------------------------------------------------- plan with a time
    ("plan_with_time_en", "I'm going to kill myself tonight", MATCH),
    ("plan_with_time_en", "tonight is the night", MATCH),
    ("plan_with_time_en", "i'm going to end it after everyone goes to sleep", MATCH),
    ("plan_with_time_en", "i'm not going to kill myself tonight", UNLESS),
    ("plan_with_time_en", "i'm never going to do it tonight, i promise", UNLESS),
    ("plan_with_time_en", "i'm going to kill myself tonight lol", UNLESS_ANY),
    ("third_party_plan_time", "she said she's going to kill herself tonight", MATCH),
    ("third_party_plan_time", "mi hermana dice que se va a matar esta noche", MATCH),
    ("third_party_plan_time", "no way he'll kill himself tonight", UNLESS),
    ("third_party_plan_time", "no se va a matar esta noche", UNLESS),
    ("third_party_plan_time", "she's going to kill herself tonight lol", UNLESS_ANY),
    ("plan_with_time_es", "voy a matarme esta noche", MATCH),
    ("plan_with_time_es", "hoy es el día", MATCH),
    ("plan_with_time_es", "no voy a matarme esta noche", UNLESS),
    ("plan_with_time_es", "voy a matarme esta noche jaja", UNLESS_ANY),
    # ---------------------------------------------------------------- means at hand (requires)
    ("means_at_hand_with_intent_en", "I have the pills right here", MATCH),
    ("means_at_hand_with_intent_en", "i've got them right here", MATCH),
    ("means_at_hand_with_intent_en", "i'm not holding the pills right here", UNLESS),
    ("means_at_hand_with_intent_es", "tengo las pastillas aquí", MATCH),
    ("means_at_hand_with_intent_es", "las tengo aqui", MATCH),
    ("means_at_hand_with_intent_es", "ya no tengo las pastillas aquí", UNLESS),
    # ---------------------------------------------------------------- farewell
    ("farewell_en", "this is my last message", MATCH),
    ("farewell_en", "goodbye forever", MATCH),
    ("farewell_en", "please take care of my cat when i'm gone", MATCH),
    ("farewell_en", "i've written my notes", MATCH),
    ("farewell_en", "she said this is my last message", UNLESS),
    ("farewell_en", "this is my last day before vacation", UNLESS_ANY),
    ("farewell_en", "goodbye everyone lol", UNLESS_ANY),
    ("farewell_es", "este es mi último mensaje", MATCH),
    ("farewell_es", "adiós para siempre", MATCH),
    ("farewell_es", "cuiden a mi perro cuando ya no esté", MATCH),
    ("farewell_es", "este no es mi último mensaje", UNLESS),
    ("farewell_es", "este es mi último día de clases", UNLESS_ANY),
    ("farewell_es", "adios a todos jaja", UNLESS_ANY),
    # ---------------------------------------------------------------- someone hurting them now
    ("violence_now_en", "he is hitting me", MATCH),
    ("violence_now_en", "my dad is breaking down the door", MATCH),
    ("violence_now_en", "it's not like he is hitting me", UNLESS),
    ("violence_now_en", "he is hitting me in the game", UNLESS_ANY),
    ("violence_now_es", "mi papá me está pegando", MATCH),
    ("violence_now_es", "me están pegando", MATCH),
    ("violence_now_es", "están rompiendo la puerta", MATCH),
    ("violence_now_es", "no me están pegando", UNLESS),
    ("violence_now_es", "nunca me estan pegando", UNLESS),
    ("violence_now_es", "me están pegando en el juego", UNLESS_ANY),
    # ---------------------------------------------------------------- medical emergency
    ("medical_emergency_en", "my friend is not breathing", MATCH),
    ("medical_emergency_en", "she won't wake up", MATCH),
    ("medical_emergency_en", "what if my friend is not breathing", UNLESS),
    ("medical_emergency_en", "my friend is not breathing in the game", UNLESS_ANY),
    ("medical_emergency_es", "mi amiga no respira", MATCH),
    ("medical_emergency_es", "no puedo respirar y el corazón me va a mil", MATCH),
    ("medical_emergency_es", "me duele el pecho, no puedo respirar", MATCH),
    ("medical_emergency_es", "qué pasa si no respira", UNLESS),
    ("medical_emergency_es", "mi amiga no respira en la peli", UNLESS_ANY),
    # ---------------------------------------------------------------- recent attempt / self-harm
    ("recent_attempt_en", "I tried to kill myself last week", MATCH),
    ("recent_attempt_en", "it's not that i tried to kill myself, i just fell", UNLESS),
    ("recent_attempt_en", "two years ago i tried to end my life, i'm well now", UNLESS),
    (
        "recent_attempt_en",
        "i tried to kill myself three years ago and therapy saved me",
        UNLESS_ANY,
    ),
    ("recent_attempt_es", "intenté matarme el mes pasado", MATCH),
    ("recent_attempt_es", "nunca intenté matarme", UNLESS),
    ("recent_attempt_es", "hace dos años intenté quitarme la vida, ahora estoy bien", UNLESS),
    ("recent_attempt_es", "intenté matarme hace cinco años y hoy estoy bien", UNLESS_ANY),
    ("recent_self_harm_en", "I cut myself again last night", MATCH),
    ("recent_self_harm_en", "it's not like i cut myself again last night", UNLESS),
    ("recent_self_harm_en", "i cut my arm today while cooking", UNLESS_ANY),
    ("recent_self_harm_es", "ya me volví a cortar anoche", MATCH),
    ("recent_self_harm_es", "ya no me volví a cortar anoche", UNLESS),
    ("recent_self_harm_es", "me corté el dedo anoche en la cocina", UNLESS_ANY),
    # ---------------------------------------------------------------- method, intent
    ("method_with_ideation_en", "i've been thinking about jumping off the bridge", MATCH),
    ("method_with_ideation_en", "how many tylenol would it take to die", MATCH),
    ("method_with_ideation_en", "i would never kill myself with pills", UNLESS),
    (
        "method_with_ideation_en",
        "my character wants to die by jumping off a bridge in the book",
        UNLESS_ANY,
    ),
    ("method_with_ideation_es", "quiero matarme con las pastillas de mi mamá", MATCH),
    ("method_with_ideation_es", "no quiero tirarme del puente", UNLESS),
    (
        "method_with_ideation_es",
        "mi personaje del libro dice quiero tirarme del puente",
        UNLESS_ANY,
    ),
    ("intent_en", "i'm going to kill myself", MATCH),
    ("intent_en", "i'm not going to kill myself", UNLESS),
    ("intent_en", "i'm going to kill myself if i fail this exam lol", UNLESS_ANY),
    ("intent_es", "ya decidí que me voy a matar", MATCH),
    ("intent_es", "nunca me voy a matar", UNLESS),
    ("intent_es", "me voy a matar si repruebo el examen jaja", UNLESS_ANY),
    ("intent_es", "voy a matarme esta vez", MATCH),
    # ---------------------------------------------------------------- asking for a method
    ("method_seeking_en", "how many tylenol would kill me", MATCH),
    ("method_seeking_en", "can 30 of my tablets kill me", MATCH),
    ("method_seeking_en", "would cutting my wrists deep enough kill me", MATCH),
    ("method_seeking_en", "what's the most painless way to die", MATCH),
    ("method_seeking_en", "what is the lethal dose of paracetamol", MATCH),
    ("method_seeking_en", "i'm not asking how many pills would kill me", UNLESS),
    ("method_seeking_en", "how much chocolate is lethal for my dog", UNLESS_ANY),
    ("method_seeking_en", "can you die from taking too many sleeping pills", MATCH),
    ("method_seeking_en", "how high does a bridge have to be to not survive", MATCH),
    ("method_seeking_en", "can i overdose on vitamin c gummies? my kid ate 5", UNLESS_ANY),
    ("dose_probe_en", "how much tylenol is too much", MATCH),
    ("dose_probe_en", "how much tylenol is too much for a headache", UNLESS_ANY),
    ("dose_probe_en", "how much melatonin is too much? i still wake at 4", UNLESS_ANY),
    ("means_acquired_en", "i bought a rope", MATCH),
    ("means_acquired_en", "i bought a rope for climbing", UNLESS_ANY),
    ("method_seeking_es", "cuántas pastillas se necesitan para morir", MATCH),
    ("method_seeking_es", "dosis letal de paracetamol", MATCH),
    ("method_seeking_es", "no quiero saber cuántas pastillas para morir", UNLESS),
    ("method_seeking_es", "cuánto chocolate es letal para mi perro", UNLESS_ANY),
    # ---------------------------------------------------------------- harm to others, abuse
    ("harm_others_en", "i'm going to kill him with a knife", MATCH),
    ("harm_others_en", "i'm going to shoot up the school", MATCH),
    ("harm_others_en", "i'm not going to kill him with a knife", UNLESS),
    ("harm_others_en", "i'm going to kill my brother with a knife in fortnite", UNLESS_ANY),
    ("harm_others_es", "lo voy a matar con el cuchillo", MATCH),
    ("harm_others_es", "nunca lo voy a matar con el cuchillo", UNLESS),
    ("harm_others_es", "lo voy a matar en el juego con el cuchillo", UNLESS_ANY),
    ("harm_others_now", "i'm going to stab him tonight", MATCH),
    ("harm_others_now", "lo voy a matar hoy", MATCH),
    ("harm_others_now", "no lo voy a matar hoy", UNLESS),
    ("harm_others_now", "i'm going to kill him tonight in fortnite", UNLESS_ANY),
    ("ongoing_abuse", "my stepdad hits me", MATCH),
    ("ongoing_abuse", "mi padrastro me pega", MATCH),
    ("ongoing_abuse", "it's not like my stepdad hits me", UNLESS),
    ("ongoing_abuse", "no es que mi padrastro me pega", UNLESS),
    ("ongoing_abuse", "my stepdad hits me in the game", UNLESS_ANY),
    # ---------------------------------------------------------------- guards
    ("idiom_killing_me", "this exam is killing me 😂", MATCH),
    ("idiom_killing_me", "how do i kill the process", MATCH),
    ("idiom_killing_me", "I need to kill time before my bus comes", MATCH),
    ("idiom_killing_me", "my phone is dead", MATCH),
    ("idiom_killing_me", "i'm so dead 😂", MATCH),
    ("idiom_killing_me", "dying to see that movie", MATCH),
    ("idiom_killing_me", "i'm cutting onions for dinner", MATCH),
    ("idiom_killing_me", "we play bridge on fridays", MATCH),
    ("idiom_killing_me", "jump rope is great cardio", MATCH),
    ("idiom_killing_me", "i killed it at the interview", MATCH),
    ("idiom_killing_me", "i died in fortnite again", MATCH),
    ("breathing_now", "I can't breathe", MATCH),
    ("breathing_now", "no puedo respirar, ayuda", MATCH),
    ("breathing_now", "i cant breathe lmao that video", UNLESS_ANY),
    ("breathing_now", "panic attack in the library, i can't breathe", UNLESS_ANY),
    ("breathing_now", "no puedo respirar de los nervios por el examen", UNLESS_ANY),
    ("about_to_jump_en", "I'm about to jump off the bridge", MATCH),
    ("about_to_jump_en", "i'm about to step in front of the train", MATCH),
    ("about_to_jump_en", "i'd never say i'm about to jump off a bridge", UNLESS),
    (
        "about_to_jump_en",
        "i'm about to jump off the cliff into the pool, cliff diving trip",
        UNLESS_ANY,
    ),
    ("about_to_jump_es", "estoy a punto de tirarme del puente", MATCH),
    ("about_to_jump_es", "nunca estoy a punto de tirarme del puente", UNLESS),
    ("about_to_jump_es", "estoy a punto de tirarme del puente haciendo puenting", UNLESS_ANY),
    ("violence_now_en", "stepdad is kicking my door", MATCH),
    ("breathing_now", "i feel like i can't breathe since she left", UNLESS),
    ("recent_attempt_en", "i just tried to hang myself", MATCH),
    ("recent_attempt_en", "i tried to kill myself when i was 11", UNLESS_ANY),
    ("method_research_with_ideation_en", "i've been researching ways to finally do it", MATCH),
    ("method_research_with_ideation_en", "i stopped researching ways to do it", UNLESS),
    ("method_research_with_ideation_es", "estuve buscando formas de hacerlo", MATCH),
    ("method_research_with_ideation_es", "ya no estoy buscando formas de hacerlo", UNLESS),
    ("threat_screamed_now_en", "he's yelling that he's going to kill me", MATCH),
    ("threat_screamed_now_en", "he used to come home yelling that he's going to kill us", UNLESS),
    (
        "threat_screamed_now_en",
        "he was screaming he's going to kill me, it's a video game",
        UNLESS_ANY,
    ),
    ("wish_to_talk", "hi, I just wanted to talk to someone", MATCH),
    ("wish_to_talk_es", "hola, solo quería hablar con alguien", MATCH),
    ("idiom_es", "me muero de risa", MATCH),
    ("idiom_es", "me muero por verte", MATCH),
    ("idiom_es", "el examen me está matando", MATCH),
    ("idiom_es", "se murió mi celular", MATCH),
    ("idiom_es", "voy a cortar cebolla para la cena", MATCH),
    ("idiom_es", "mi mamá me va a matar si llego tarde", MATCH),
    ("idiom_es", "me quiero morir jajaja", MATCH),
    ("idiom_es", "mi esposo me está matando", UNLESS_ANY),  # a husband is not an exam
    # ---------------------------------------------------------------- marks
    ("method_overdose", "I took 30 pills", MATCH),
    ("method_overdose", "tengo muchas pastillas", MATCH),
    ("method_firearm", "my dad keeps a gun in the closet", MATCH),
    ("method_firearm", "mi papá tiene una pistola", MATCH),
    ("method_hanging", "there is a rope in the basement", MATCH),
    ("method_hanging", "compré una soga", MATCH),
    ("method_jumping", "i keep thinking about the bridge", MATCH),
    ("method_jumping", "pienso en el puente", MATCH),
    ("method_cutting", "i hide a razor blade in my room", MATCH),
    ("method_cutting", "tengo una navaja en mi cuarto", MATCH),
    ("method_vehicle", "carbon monoxide from the car", MATCH),
    ("method_vehicle", "quiero chocar el carro", MATCH),
    ("method_poison", "there is bleach under the sink", MATCH),
    ("method_poison", "hay veneno para ratas en la casa", MATCH),
    ("time_tonight", "tonight", MATCH),
    ("time_tonight", "esta noche no puedo dormir", MATCH),
    ("time_now", "i need help right now", MATCH),
    ("time_now", "ahorita no puedo hablar", MATCH),
    ("time_today", "today was hard", MATCH),
    ("time_today", "hoy fue un día muy difícil", MATCH),
    ("time_tomorrow", "tomorrow is the funeral", MATCH),
    ("time_tomorrow", "mañana tengo examen", MATCH),
    ("ideation_active", "i want to die", MATCH),
    ("ideation_active", "me quiero morir", MATCH),
    ("ideation_active", "i don't want to die", UNLESS),
    ("ideation_active", "no quiero morir", UNLESS),
    ("ideation_passive", "i wish i was dead", MATCH),
    ("ideation_passive", "ojalá no despertara mañana", MATCH),
    ("mention_suicide", "what is suicide", MATCH),
    ("mention_suicide", "qué es el suicidio", MATCH),
    ("third_party", "my friend said she wants to kill herself", MATCH),
    ("third_party", "mi amiga se quiere matar", MATCH),
    ("negated_suicidal", "i'm not suicidal, just tired", MATCH),
    ("negated_suicidal", "no soy suicida, solo estoy cansada", MATCH),
    ("retraction", "jk", MATCH),
    ("retraction", "solo bromeaba", MATCH),
    ("laughing", "that meme lol", MATCH),
    ("laughing", "jajaja qué risa", MATCH),
    ("emoji_risk", "💊💊💊", MATCH),
    ("emoji_risk", "🔪🩸", MATCH),
]


def _case_id(case: tuple[str, str, str]) -> str:
    return f"{case[0]}-{case[2]}-{case[1][:30]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rule_case(engine: Engine, case: tuple[str, str, str]) -> None:
    rule_id, text, expectation = case
    item = rule(engine, rule_id)
    assert scan_lang(engine, text) in item.languages, (
        f"{text!r} is read as {engine.languages.detect(text)}, which {rule_id} is not for"
    )
    matched = matched_ids(engine, text)
    if expectation == MATCH:
        assert rule_id in matched, f"{rule_id} does not match {text!r} (matched: {matched})"
    else:
        assert rule_id not in matched, f"{rule_id} matches {text!r} despite its {expectation}"


# Near misses a rule's patterns leave out by their shape (no veto involved): hyperbole and
# wishes that read like a floor's words, each measured as a calm or moderate row it had raised.
NEAR_MISSES: list[tuple[str, str]] = [
    ("intent_es", "quiero matarme"),
    ("intent_es", "toda la noche me voy a matar estudiando"),
    ("method_seeking_en", "mum is gonna kill me when she sees the car"),
    ("method_seeking_en", "the landlord will kill me"),
    ("medical_emergency_es", "no puedo respirar"),
]


@pytest.mark.parametrize("case", NEAR_MISSES, ids=lambda case: f"{case[0]}-{case[1]}")
def test_near_miss_is_not_matched(engine: Engine, case: tuple[str, str]) -> None:
    rule_id, text = case
    assert scan_lang(engine, text) in rule(engine, rule_id).languages
    assert rule_id not in matched_ids(engine, text)


@pytest.mark.parametrize("case", [case for case in CASES if case[2] != MATCH], ids=_case_id)
def test_negated_cases_are_vetoed_by_that_veto(engine: Engine, case: tuple[str, str, str]) -> None:
    """Without the veto under test the rule matches, so the row really exercises that veto."""
    rule_id, text, veto = case
    assert without(rule(engine, rule_id), [veto]).spans(folded(text)), (
        f"{rule_id} does not match {text!r} even without its {veto}: the row tests nothing"
    )


def test_every_rule_has_cases_in_the_table(engine: Engine) -> None:
    positive = {rule_id for rule_id, _, expectation in CASES if expectation == MATCH}
    vetoed = {(rule_id, expectation) for rule_id, _, expectation in CASES}
    missing: list[str] = []
    for item in engine.rulebook.rules:
        if item.id not in positive:
            missing.append(f"{item.id}: no positive case")
        if item.kind == "mark":
            continue
        for veto in (UNLESS, UNLESS_ANY):
            if getattr(item, veto) and (item.id, veto) not in vetoed:
                missing.append(f"{item.id}: no case for its {veto}")
    assert not missing, missing


@pytest.mark.parametrize("lang", ["en", "es"], ids=["floors-and-guards-en", "floors-and-guards-es"])
def test_each_language_has_floors_and_guards(engine: Engine, lang: str) -> None:
    kinds = {item.kind for item in engine.rulebook.rules if lang in item.languages}
    assert kinds == {"floor", "guard", "mark"}


# ------------------------------------------------------------------------ what a scan decides
def test_an_overdose_just_taken_is_an_imminent_floor(engine: Engine) -> None:
    scan = prepare("I took 30 pills", engine.languages, engine.rulebook).scan
    assert scan.floor == Level.imminent
    assert {"behavior:attempt_now", "method:overdose"} <= scan.signals


def test_a_spanish_overdose_just_taken_is_an_imminent_floor(engine: Engine) -> None:
    lang, scan, _ = prepare("ya me tomé todas las pastillas", engine.languages, engine.rulebook)
    assert lang == "es"
    assert scan.floor == Level.imminent
    assert "behavior:attempt_now" in scan.signals


@pytest.mark.parametrize(
    ("text", "signal", "word"),
    [
        ("this exam is killing me 😂", "idiom:killing_me", "killing"),
        ("I need to kill time before my bus comes", "idiom:killing_me", "kill"),
        ("el examen me está matando", "idiom:hyperbole", "matando"),
        ("me muero de risa", "idiom:hyperbole", "muero"),
    ],
)
def test_a_guard_masks_the_idiom_and_says_so(
    engine: Engine, text: str, signal: str, word: str
) -> None:
    scan = prepare(text, engine.languages, engine.rulebook).scan
    masked = scan.masked
    assert signal in scan.signals
    assert scan.floor == Level.none
    assert word not in masked.split()
    assert masked == scan.masked


def test_a_guard_masks_only_the_idiom(engine: Engine) -> None:
    """The rest of the message is still read: the second half keeps its words and marks."""
    scan = prepare(
        "this exam is killing me and honestly i want to die", engine.languages, engine.rulebook
    ).scan
    masked = scan.masked
    assert "killing" not in masked
    assert "want to die" in masked
    assert "ideation:active" in scan.signals


@pytest.mark.parametrize(
    "text", ["I would never take the pills", "what if I took 30 pills", "I never took any pills"]
)
def test_a_negated_or_hypothetical_overdose_is_not_the_overdose_floor(
    engine: Engine, text: str
) -> None:
    assert "overdose_taken" not in matched_ids(engine, text)
    scan = prepare(text, engine.languages, engine.rulebook).scan
    assert "behavior:attempt_now" not in scan.signals
    assert scan.floor < Level.imminent


def test_a_floor_that_requires_context_waits_for_it(engine: Engine) -> None:
    scan = prepare("I have them right here", engine.languages, engine.rulebook).scan
    assert scan.floor == Level.none
    assert [item.id for item in scan.pending] == ["means_at_hand_with_intent_en"]
    assert Rulebook.confirm(scan.pending, frozenset({"lang:en"})) == (Level.none, set())
    level, signals = Rulebook.confirm(scan.pending, frozenset({"method:overdose"}))
    assert (level, signals) == (Level.imminent, {"means:access"})


def test_fold_removes_case_and_accents() -> None:
    assert fold("tomé pastillas, mañana") == "tome pastillas, manana"
    assert fold("ascii stays") == "ascii stays"


# ------------------------------------------------------------------------ the tables as data
def test_packaged_tables_load_and_validate() -> None:
    book = load()
    ids = [item.id for item in book.rules]
    assert len(ids) == len(set(ids))
    floors = [item for item in book.rules if item.kind == "floor"]
    assert floors
    assert all(item.level >= Level.moderate for item in floors)
    assert all(item.level == Level.none for item in book.rules if item.kind != "floor")
    assert all(item.signals for item in book.rules if item.kind != "guard")
    assert {"behavior:attempt_now", "plan:time", "idiom:killing_me"} <= set(book.mark_signals)


def _tables(tmp_path: Path) -> Path:
    directory = tmp_path / "tables"
    shutil.copytree(TABLES_DIR, directory)
    return directory


_FLOOR = '\n[[floor]]\nid = "{id}"\nlevel = "high"\nsignals = ["test:{id}"]\npatterns = [{p}]\n'

MALFORMED: list[tuple[str, str, str, str]] = [
    (
        "unknown key",
        "floors.toml",
        '\n[[floor]]\nid = "typo"\nlevel = "high"\nsignals = ["x"]\npattern = ["a"]\n',
        r"floors\.toml \[floor\] typo: unknown keys \['pattern'\]",
    ),
    (
        "bad regex",
        "floors.toml",
        _FLOOR.format(id="bad_regex", p='"(unclosed"'),
        r"bad_regex: invalid pattern '\(unclosed'",
    ),
    (
        "upper-case pattern",
        "floors.toml",
        _FLOOR.format(id="shouting", p='"I took"'),
        r"shouting: pattern 'I took' must be lower case, no accents",
    ),
    (
        "accented pattern",
        "guards.toml",
        '\n[[guard]]\nid = "accent"\npatterns = ["tomé"]\n',
        r"accent: pattern 'tomé' must be lower case, no accents",
    ),
    (
        "unknown vocab name",
        "floors.toml",
        _FLOOR.format(id="no_vocab", p='"{no_such_list} now"'),
        r"no_vocab: pattern uses \{no_such_list\}, which vocab\.toml lacks",
    ),
    (
        "duplicate id",
        "marks.toml",
        '\n[[mark]]\nid = "overdose_taken"\nsignals = ["x"]\npatterns = ["x"]\n',
        r"duplicate rule ids: \['overdose_taken'\]",
    ),
    (
        "floor without level",
        "floors.toml",
        '\n[[floor]]\nid = "levelless"\nsignals = ["x"]\npatterns = ["x"]\n',
        r"levelless: a floor's level is moderate, high or imminent",
    ),
    (
        "floor at level low",
        "floors.toml",
        '\n[[floor]]\nid = "low_floor"\nlevel = "low"\nsignals = ["x"]\npatterns = ["x"]\n',
        r"low_floor: a floor's level is moderate, high or imminent",
    ),
    (
        "mark without signal",
        "marks.toml",
        '\n[[mark]]\nid = "silent"\npatterns = ["x"]\n',
        r"silent: a mark must emit at least one signal",
    ),
    (
        "signal not snake_case",
        "marks.toml",
        '\n[[mark]]\nid = "camel"\nsignals = ["Method:Pills"]\npatterns = ["x"]\n',
        r"camel: signal 'Method:Pills' is not snake_case",
    ),
    (
        "rule without patterns",
        "guards.toml",
        '\n[[guard]]\nid = "empty"\npatterns = []\n',
        r"empty: no patterns",
    ),
    (
        "unknown language",
        "guards.toml",
        '\n[[guard]]\nid = "french"\nlang = ["fr"]\npatterns = ["x"]\n',
        r"french: lang must be among",
    ),
    (
        "window out of range",
        "guards.toml",
        '\n[[guard]]\nid = "wide"\nunless_window = 5000\npatterns = ["x"]\n',
        r"wide: unless_window must be an int 0-200",
    ),
    (
        "wrong table kind in a file",
        "guards.toml",
        '\n[[floor]]\nid = "lost"\nlevel = "high"\nsignals = ["x"]\npatterns = ["x"]\n',
        r"guards\.toml: only \[\[guard\]\] tables belong here",
    ),
    ("not TOML", "marks.toml", "\n[[mark]\nid = \n", r"marks\.toml: "),
]


@pytest.mark.parametrize(
    ("problem", "filename", "appended", "message"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_tables_are_refused_with_a_useful_message(
    tmp_path: Path, problem: str, filename: str, appended: str, message: str
) -> None:
    directory = _tables(tmp_path)
    with (directory / filename).open("a", encoding="utf-8") as handle:
        handle.write(appended)
    with pytest.raises(RuleTableError, match=message):
        load(directory)


def test_an_unmodified_copy_of_the_tables_loads(tmp_path: Path) -> None:
    """The malformed cases above fail because of what they add, not because of the copy."""
    assert len(load(_tables(tmp_path)).rules) == len(load().rules)


def test_a_missing_table_file_is_refused(tmp_path: Path) -> None:
    directory = _tables(tmp_path)
    (directory / "floors.toml").unlink()
    with pytest.raises(RuleTableError, match=r"floors\.toml"):
        load(directory)
