"""Explainable rules: what a crisis-line volunteer would underline in a message.

Each rule emits a stable signal name (``method:overdose``, ``time:tonight``, ``negated:suicidal``
...). The signals decide a *floor* level (C-SSRS-aligned, SPEC §2) and are also features of the
statistical model, which may raise a message further but never lower it below the rules.

The pipeline for one message:

1. normalise (coded words, contractions) — see :mod:`app.triage.normalize`;
2. mask idioms and harmless homonyms ("this exam is killing me", "kill a Python process") so
   they cannot fire a risk rule, recording ``idiom:*`` signals;
3. run the risk rules. Rules about a person ("want to die", "took 30 pills") look at the clause
   before the match: a negation ("I'm not", "I would never") turns the match into ``negated:*``;
   a third-person subject ("my friend said she") turns it into the same signal plus
   ``third_party``;
4. keep ambiguous phrases ("I did it", "wrote a note", "my plan") only if something unambiguous
   about risk is present in the message or, later, in the conversation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from app.triage.language import is_unsupported_language
from app.triage.normalize import normalize, trie_pattern
from app.triage.types import Level

# ---------------------------------------------------------------------------------------------
# Shared vocabulary
# ---------------------------------------------------------------------------------------------

_PERSON = (
    r"(?:friend|friends|bff|bestie|bestfriend|sister|brother|sis|bro|mom|mum|mother|dad|father|"
    r"son|daughter|kid|child|cousin|aunt|uncle|husband|wife|boyfriend|girlfriend|partner|"
    r"roommate|flatmate|classmate|coworker|colleague|student|neighbou?r|grandma|grandpa|"
    r"grandmother|grandfather|niece|nephew|fianc[eé]e?|ex|stepdad|stepmom|stepfather|"
    r"stepmother|teen|teenager|patient|client|parents?|boss|teacher|coach)"
)
_AGENT = (
    r"(?:he|she|they|someone|somebody|a (?:man|guy|woman|stranger)|"
    r"my (?:\w+ )?" + _PERSON + r")"
)
_PILLS = (
    r"(?:pills?|tablets?|capsules?|medication|medicine|paracetamol|tylenol|ibuprofen|advil|"
    r"motrin|aspirin|nurofen|aleve|naproxen|excedrin|xanax|benzos?|opioids?|oxy\w*|fentanyl|"
    r"insulin|antidepressants?|sertraline|zoloft|prozac|fluoxetine|lexapro|escitalopram|"
    r"citalopram|venlafaxine|effexor|wellbutrin|bupropion|lithium|seroquel|quetiapine|"
    r"olanzapine|amitriptyline|trazodone|gabapentin|tramadol|codeine|morphine|hydrocodone|"
    r"vicodin|percocet|klonopin|clonazepam|valium|diazepam|ativan|lorazepam|ambien|zolpidem|"
    r"melatonin|benadryl|diphenhydramine|nyquil|antihistamines?|sleeping pills|painkillers?|"
    r"pain killers?|\d+mg)"
)
# Distress without suicidal content (SPEC level "low"). Plain phrases, matched as whole words.
_DISTRESS_WORDS = (
    "sad",
    "sadness",
    "depressed",
    "depression",
    "depressing",
    "lonely",
    "loneliness",
    "so alone",
    "all alone",
    "feel alone",
    "isolated",
    "anxious",
    "anxiety",
    "panic",
    "panicking",
    "stressed",
    "stress",
    "overwhelmed",
    "worthless",
    "empty",
    "numb",
    "crying",
    "cried",
    "cry",
    "tears",
    "hate myself",
    "hate my life",
    "miserable",
    "heartbroken",
    "grief",
    "grieving",
    "scared",
    "afraid",
    "terrified",
    "exhausted",
    "burnt out",
    "burned out",
    "struggling",
    "suffering",
    "in pain",
    "hurting",
    "upset",
    "devastated",
    "desperate",
    "despair",
    "trauma",
    "traumatized",
    "ptsd",
    "failure",
    "useless",
    "pathetic",
    "unloved",
    "unwanted",
    "abandoned",
    "rejected",
    "ashamed",
    "guilty",
    "insomnia",
    "can't sleep",
    "no one cares",
    "nobody cares",
    "no friends",
    "hate everything",
    "tired of everything",
    "self loathing",
    "self-loathing",
    "selfloathing",
    "bullied",
    "bullying",
    "bad place",
    "dark place",
    "unhappy",
    "dumped",
    "broke up",
    "breakup",
    "fired",
    "laid off",
    "evicted",
    "homeless",
    "divorce",
    "passed away",
    "died",
    "funeral",
    "miss her so much",
    "miss him so much",
    "miss them so much",
    "lost my",
    "don't know what to do",
    "need someone to talk to",
    "need somebody to talk to",
    "need help",
    "please help",
    "help me",
    "mental health",
    "therapist",
    "therapy",
    "psychiatrist",
)
_PILL_KEYS = tuple(
    "mg" if "\\d" in word else re.sub(r"(?:s\?|\?|\\w\*)$", "", word)
    for word in _PILLS[3:-1].split("|")
)
_QUANTITY = re.compile(
    r"\b(?:\d+|a (?:few|couple|bunch|handful|bottle|lot|whole|load|shitload|ton|box|pack|"
    r"fistful|strip)|several|dozens?|hundreds?|whole|entire|all|too many|too much|every|"
    r"the rest|half)\b"
)
_CLAUSE_BREAK = re.compile(r"[.!?;:\n,]|\bbut\b|\bbecause\b|\bthough\b|\bhowever\b")
_SUBJECT = re.compile(
    r"\b(?:(?P<first>i|i'm|i've|i'll|i'd|me|myself|we|we're|you|you're|you've|you'll)|"
    r"(?P<third>she|he|they|she's|he's|they're|she'll|he'll|they'll|she'd|he'd|they'd|"
    + _PERSON[3:-1]
    + r"))\b"
)
_NEGATED_TAIL = re.compile(
    r"(?:\b(?:not|never|no|nor|without)|n't)"
    r"(?:\s+(?:really|actually|actively|ever|even|currently|seriously|necessarily|at all|going to|"
    r"want to|wanting to|planning to|plan to|planning on|intend to|intending to|trying to|"
    r"about to|thinking about|thinking of|have|having|had|been|be|feel|feeling|any|to|"
    r"longer|anymore|more|a|the|do|doing|like|that|so|thoughts of|thought of|try to|"
    r"attempt to|attempted to|tried to|ever been|gonna|want|wanna|plan|suicidal|having any|"
    r"had any))*\s*$"
)

# ---------------------------------------------------------------------------------------------
# Stage 1: idioms and homonyms, masked before risk rules run
# ---------------------------------------------------------------------------------------------

_LAUGH = r"(?:😂|🤣|💀|😭|😆|😅|\blol\w*|\blmao\w*|\blmfao\b|\bhaha\w*|\bhehe\w*|\brofl\b|\bxd+\b)"
_NON_PERSON_SUBJECT = re.compile(
    r"(?:\b(?:he|she|they|someone|somebody|" + _PERSON[3:-1] + r")(?:'s|'re|\s+(?:is|are|was|"
    r"were|keeps|kept))?\s*(?:\w+ly\s+|so\s+)?$)"
)


def _window(text: str, match: re.Match[str], before: int, after: int) -> str:
    """The text around a match: ``before`` characters ahead of it, ``after`` past its end."""
    return text[max(0, match.start() - before) : match.end() + after]


def _prefix(text: str, match: re.Match[str], before: int) -> str:
    """The ``before`` characters ahead of a match."""
    return text[max(0, match.start() - before) : match.start()]


_LAUGH_RE = re.compile(_LAUGH)


def _not_person_subject(match: re.Match[str], text: str) -> bool:
    """'X is killing me' is hyperbole unless X is a person (then it may be real danger)."""
    return (
        _NON_PERSON_SUBJECT.search(_prefix(text, match, 40)) is None
        or _LAUGH_RE.search(match.group(0)) is not None
    )


_IdiomCheck = Callable[[re.Match[str], str], bool]
# (signal, keys, pattern, check): keys as for _Rule below; check may veto a match.
_IDIOM_SOURCES: tuple[tuple[str, tuple[str, ...], re.Pattern[str], _IdiomCheck | None], ...] = (
    (
        "idiom:dead_laughing",
        ("dead", "dying", "ded", "deceased", "died", "crying", "kill", "laugh"),
        re.compile(
            r"(?:\b(?:i'm\s+|i\s+)?(?:literally\s+|actually\s+|so\s+|just\s+)?(?:dead|dying|ded|"
            r"deceased|died|crying)\b\s*" + _LAUGH + r"+"
            r"|"
            + _LAUGH
            + r"+\s*(?:i'm\s+)?(?:literally\s+|actually\s+)?(?:dead|dying|ded|deceased)\b"
            r"|\b(?:dying|died|dead|killing myself|killed me|kill me)\s+(?:of|from|with)?\s*"
            r"(?:laughter|laughing|cringe|embarrassment)"
            r"|\b(?:almost|nearly|literally)\s+died\s+(?:laughing|of|from|when)\b"
            r"|\blaugh(?:ed|ing)\s+(?:so\s+hard\s+)?(?:to\s+death|i\s+(?:almost\s+)?died)"
            r"|\bkilling myself laughing\b)"
        ),
        None,
    ),
    (
        "idiom:killing_me",
        ("killing me",),
        re.compile(
            r"\b(?:literally\s+|actually\s+|really\s+|so\s+|slowly\s+|honestly\s+|lowkey\s+)?"
            r"killing\s+me(?:\s+(?:inside|softly|rn|right now|today|lol|haha))?\b(?:\s*"
            + _LAUGH
            + r")?"
        ),
        _not_person_subject,
    ),
    (
        "idiom:kill_time",
        ("time",),
        re.compile(
            r"\bkill(?:ing|ed|s)?\s+(?:some\s+|the\s+|a\s+little\s+|a\s+bit\s+of\s+)?time\b"
        ),
        None,
    ),
    (
        "idiom:killed_it",
        ("killed", "killing", "killin", "slay", "murder", "crushed", "nailed"),
        re.compile(
            r"\b(?:killed|killing|killin'?|slayed|slaying|murdered|murdering|crushed|nailed)\s+"
            r"(?:it|that|the (?:game|exam|test|interview|presentation|show|set|competition))\b"
        ),
        None,
    ),
    (
        "idiom:dying_to",
        ("dying", "die", "dead", "to death", "kill"),
        re.compile(
            r"\bdying\s+to\s+(?:see|know|try|meet|go|get|hear|watch|tell|eat|read|play|visit|"
            r"find|ask|talk|show|share)\b|\bdying\s+for\s+(?:a|an|some|the)\s+"
            r"|\bto\s+die\s+for\b|\b(?:would|'d|could)\s+(?:literally\s+)?(?:kill|die)\s+for\s+"
            r"(?:a|an|some|the|that|this|those|these|one)\b"
            r"|\b(?:die|died|dying|dead)\s+of\s+(?:embarrassment|boredom|cringe|shame|jealousy|"
            r"envy|cuteness|excitement|happiness|thirst|hunger|heat)\b"
            r"|\b(?:bored|scared|worried|embarrassed|freezing|starving|loved?) to death\b"
        ),
        None,
    ),
    (
        "idiom:hyperbole",
        (
            "dead",
            "deathly",
            "gorgeous",
            "died",
            "dying",
            "kill",
            "breathe",
            "die",
            "cry",
            "scream",
            "shoot me",
            "over my dead",
        ),
        re.compile(
            r"\b(?:dead|deathly)\s+(?:tired|serious|beat|set|on|wrong|right|silent|center|centre|"
            r"last|even|ringer|weight|end|heat|zone|air|link|lock|inside lol)\b"
            r"|\bdrop[\s-]dead\s+gorgeous\b"
            r"|\b(?:phone|battery|laptop|computer|car|plant|plants|pc|ipad|tablet|charger|"
            r"headphones|airpods|game|server|wifi|internet|mouse|keyboard|console|switch|tv)\s+"
            r"(?:is\s+|'s\s+|just\s+|has\s+)?(?:dead|died|dying)\b"
            r"|\b(?:is|are|'s|'re|will|'ll|would|'d|going to)\s+(?:literally\s+|actually\s+)?"
            r"kill\s+me\s+(?:if|when|for|after|because|once|lol|haha)\b"
            r"|\bkill\s+me\s*" + _LAUGH + r"|\bi\s+could\s+(?:just\s+|literally\s+)?kill\s+"
            r"(?:him|her|them|you|my \w+)\s*(?:" + _LAUGH + r"|\bfor\b|\bsometimes\b|\bright now\b"
            r"\s*" + _LAUGH + r")"
            r"|\bkill\s+(?:you|u)\s*"
            + _LAUGH
            + r"|\bcan't breathe\s*"
            + _LAUGH
            + r"|\b(?:i'm\s+)?(?:going to|about to)\s+(?:die|cry|scream)\s*"
            + _LAUGH
            + r"|\bshoot me now\b|\bover my dead body\b|\bwould rather die than\b"
        ),
        None,
    ),
    (
        "idiom:homonym",
        (
            "kill",
            "terminat",
            "abort",
            "execut",
            "shoot",
            "photo",
            "hang",
            "hung",
            "blow",
            "cut",
            "jump",
            "suicide",
            "overdos",
            "gun",
            "rope",
            "bridge",
            "pill",
            "tablet",
            "tylenol",
            "advil",
            "ibuprofen",
            "aspirin",
            "paracetamol",
            "motrin",
            "nurofen",
            "shot",
            "dye",
            "dying",
            "knife",
        ),
        re.compile(
            # technical, household, sport and media senses of violent words
            r"\b(?:kill|killing|killed|kills|terminate|terminating|terminated|abort|aborting)\s+"
            r"(?:a\s+|an\s+|the\s+|this\s+|that\s+|my\s+|all\s+|every\s+|your\s+|their\s+|"
            r"off\s+)?(?:\w+\s+)?(?:process(?:es)?|tasks?|jobs?|programs?|apps?|applications?|"
            r"threads?|servers?|containers?|sessions?|pids?|commands?|scripts?|query|queries|"
            r"loops?|switch|engine|motor|lights?|music|sound|mood|vibe|buzz|joke|weeds?|bacteria|"
            r"germs|virus(?:es)?|mold|mould|pests?|ants|rats?|mice|bugs?|spiders?|flies|fly|"
            r"roaches|cockroach\w*|wasps?|mosquito\w*|termites|fleas|lice|contracts?|lease|"
            r"agreement|employment|subscription|calls?|meeting|instances?|vms?|pods?|branch|"
            r"battery|batteries|conversation|boss|monsters?|zombies?|enemies|enemy|dragon|"
            r"character|characters|players?|npcs?|mobs?|creepers?|pregnancy)\b"
            r"|\bexecut(?:e|ed|ing)\s+(?:a\s+|an\s+|the\s+|this\s+|that\s+|my\s+)?(?:\w+\s+)?"
            r"(?:command|code|script|program|order|query|trade|task|function|move|strategy|"
            r"project|file|sql|contract|will|query|plan)\b"
            r"|\bshoot(?:ing)?\s+(?:a\s+(?:\w+\s+)?|the\s+(?:\w+\s+)?|some\s+|me\s+an?\s+|you\s+an?\s+|him\s+an?\s+|"
            r"her\s+an?\s+|them\s+an?\s+)?(?:photos?|pictures?|pics?|videos?|films?|movies?|scenes?|"
            r"emails?|messages?|texts?|dms?|shots?|hoops?|baskets?|breeze|idea|question|goals?|"
            r"for the (?:stars|moon)|your shot|my shot)\b|\bphoto\s*shoots?\b"
            r"|\b(?:hang|hanging|hangs|hung)\s+(?:out|up|on|in there|around|with|a\s+(?:picture|"
            r"painting|poster|shelf|frame|left|right)|the\s+(?:laundry|clothes|picture|"
            r"painting|washing|decorations|lights))\b|\bhangover\b"
            r"|\bblow(?:ing|n)?\s+up\s+(?:a\s+|the\s+|my\s+)?(?:balloons?|tires?|tyres?|photos?|"
            r"pictures?|phone)\b"
            r"|\bcut(?:ting)?\s+(?:the|a|my|some|his|her|your)\s+(?:cake|hair|onions?|paper|"
            r"budget|costs|bread|meat|grass|lawn|wood|ties|class|classes|losses|line|deal|"
            r"vegetables|carbs|sugar|nails|fabric|tree|fingers? (?:while|when)|losses)\b"
            r"|\bcut\s+(?:back|down|out)\s+on\b"
            r"|\bjump(?:ing|ed)?\s+(?:rope|start|the gun|to conclusions|on (?:a|the) (?:call|"
            r"bandwagon|trampoline)|at the chance|in(?:to)? (?:the )?(?:conversation|pool|shower|"
            r"call|lake for a swim))\b"
            r"|\bsuicide\s+(?:squad|mission|doors?|bomber|bombing|bombers|run|king|queen)\b"
            r"|\boverdos(?:e|ed|ing)\s+on\s+(?:sugar|caffeine|chocolate|candy|coffee|netflix|"
            r"cuteness|love|anime|memes|vitamin \w+)\b"
            r"|\b(?:glue|nail|water|nerf|staple|heat|spray|toy|paintball|airsoft|laser|squirt|bb|"
            r"cap|grease|caulk|caulking|massage)\s+guns?\b|\bgun\s+control\b"
            r"|\b(?:jump|skipping)\s+ropes?\b|\bropes\s+course\b|\blearn(?:ing)?\s+the\s+ropes\b"
            r"|\bbridge\s+(?:the\s+gap|loan|card|game)\b|\bcross\s+(?:that|the)\s+bridge\b"
            r"|\b(?:birth control|vitamin|fish oil|iron|diet|allergy)\s+(?:pills?|tablets?)\b"
            r"|\b(?:a|an|one|two|2|some)\s+(?:tylenol|advil|ibuprofen|aspirin|paracetamol|motrin|"
            r"nurofen)\s+(?:for|because)\b"
            r"|\b(?:flu|covid|booster|vaccine|tetanus)\s+shots?\b"
            r"|\bdye?ing\s+(?:my|her|his)\s+hair\b"
            r"|\b(?:butcher|butter|bread|kitchen|steak|pocket)\s+knife\b"
        ),
        None,
    ),
)

# ---------------------------------------------------------------------------------------------
# Stage 2: risk rules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    signal: str
    # Substrings of which at least one must occur for the pattern to match: a cheap test that
    # skips most patterns for most messages (see tests/triage/test_rules.py, which checks it).
    keys: tuple[str, ...]
    pattern: re.Pattern[str]
    # About a person: the clause before the match decides negation and who it is about.
    directed: bool = False
    # Ambiguous alone ("I did it"): confirmed only beside an unambiguous risk signal.
    needs_risk: bool = False
    # A method named so specifically ("noose", "800mg", "antifreeze") that crisis lines treat it
    # as riskier than the word "suicide": high on its own.
    strong: bool = False
    # Optional refinement: returns the signal to emit (or None to drop the match).
    refine: Callable[[re.Match[str], str], str | None] | None = None

    @property
    def first_match_enough(self) -> bool:
        """Only presence matters (no per-match decision, no position needed for proximity)."""
        return not (self.directed or self.needs_risk or self.refine or self.signal in _ANCHORS)


def _split_alternatives(pattern: str) -> list[str]:
    """Top-level ``|`` alternatives of a regex source (respecting groups, classes, escapes)."""
    parts: list[str] = []
    depth = 0
    in_class = False
    start = 0
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
        index += 1
    parts.append(pattern[start:])
    return parts


def _closing_paren(pattern: str, open_index: int) -> int:
    depth = 0
    in_class = False
    index = open_index
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ValueError(pattern)


def _strip_leading_boundaries(pattern: str) -> str:
    """Remove the ``\\b`` that starts each alternative (also inside a leading group)."""
    stripped: list[str] = []
    for part in _split_alternatives(pattern):
        if part.startswith("\\b"):
            part = part[2:]
        if part.startswith("(?:"):
            close = _closing_paren(part, 0)
            inner = _strip_leading_boundaries(part[3:close])
            part = "(?:" + inner + part[close:]
        stripped.append(part)
    return "|".join(stripped)


def _starts_with_word(part: str) -> bool:
    """Can every match of this alternative only start with a word character?"""
    if part.startswith("(?:"):
        close = _closing_paren(part, 0)
        return all(_starts_with_word(alt) for alt in _split_alternatives(part[3:close]))
    if part.startswith("\\"):
        return part[1:2] in ("w", "d")
    return part[:1].isalnum()


def _rx(pattern: str) -> re.Pattern[str]:
    """Compile a rule pattern with ONE word boundary in front of all its alternatives.

    Rule sources are written readably with a ``\\b`` before each alternative. Python's ``re``
    then tries every alternative's boundary at every character; a single leading ``\\b`` rejects
    mid-word positions in one step, which makes the rule set several times faster. Alternatives
    that start with a symbol (an emoji) cannot sit behind a word boundary and stay apart.
    """
    words: list[str] = []
    symbols: list[str] = []
    for part in _split_alternatives(_strip_leading_boundaries(pattern)):
        (words if _starts_with_word(part) else symbols).append(part)
    compiled = "\\b(?:" + "|".join(words) + ")" if words else ""
    return re.compile("|".join([compiled, *symbols]) if compiled else "|".join(symbols))


_RECENT = re.compile(
    r"\b(?:just|right now|minutes? ago|an hour ago|hours? ago|\d+ (?:min|mins|minutes|"
    r"hours?) ago|tonight|today|this morning|this evening|earlier|as i (?:write|type|speak)|"
    r"waiting|kick(?:ing)? in|i think i'm dying|going to die|am i going to die|will i die|"
    r"feel (?:sick|dizzy|sleepy|weird|nothing)|vomit\w*|throwing up|puk\w+|don't feel anything|"
    r"happening|hoping it works|let's hope)\b"
)
_PAST = re.compile(
    r"\b(?:last (?:year|month|summer|winter|spring|fall|time)|years? ago|months ago|weeks ago|"
    r"when i was|in (?:19|20)\d\d|as a (?:kid|child|teen|teenager)|back in|in the past|"
    r"previous|before|once|twice|used to|survived|hospital|ago|yesterday|last night|"
    r"the other day|last week)\b"
)


def _attempt_timing(match: re.Match[str], text: str) -> str | None:
    """An ingestion or act described without a past marker is treated as happening now."""
    window = _window(text, match, 60, 120)
    if _PAST.search(window) and not _RECENT.search(window):
        return "behavior:attempt"
    return "behavior:attempt_now"


_HYPOTHETICAL = re.compile(
    r"\b(?:if|from|what happens|can you|could you|can i|could i|would|should|how many|how much|"
    r"whether|thinking (?:about|of)|want to|wanted to|planning|plan to|going to)\b"
)


def _took_quantity(match: re.Match[str], text: str) -> str | None:
    """'took my pills' is routine; 'took 30 pills' / 'a whole bottle' is an overdose."""
    if _HYPOTHETICAL.search(_clause_prefix(text, match.start())):
        return None  # "can you die from taking too many sleeping pills" asks, it does not report
    if _QUANTITY.search(match.group(0)) is None and "mg" not in match.group(0):
        return "?" + str(_attempt_timing(match, text))  # ambiguous: needs a risk phrase nearby
    return _attempt_timing(match, text)


# The words each refinement below looks for around its match, compiled once: refinements run for
# every match of their rule in every message.
_SELF_HARM_RECENT = re.compile(
    r"\b(?:again|today|tonight|last night|yesterday|earlier|this morning|this week|"
    r"\w+ (?:minutes|hours|days) ago|an hour ago|just now|right now)\b"
)
_CONDITION_AFTER = re.compile(r"\b(?:if|unless|someday|one day|eventually)\b")
_CONDITION_BEFORE = re.compile(r"\b(?:if|unless|otherwise|or else)\b")
_WAS_BEFORE = re.compile(r"\b(?:was|were|had been|last (?:year|time|month)|ago|when i)\b")
_ABUSER_HERE_NOW = re.compile(
    r"\b(?:right now|now|as i (?:type|write|speak)|outside (?:my|the) (?:door|room|house)|"
    r"at the door|is here|coming (?:home|back|for me)|on (?:his|her|their) way)\b"
)
_ABUSE_RIGHT_NOW = re.compile(r"\b(?:right now|just now)\b")
_ABUSE_LONG_AGO = re.compile(
    r"\b(?:when i was|as a (?:kid|child|teen|teenager)|growing up|years ago|childhood|"
    r"in the past|used to)\b"
)
_ABUSE_LATELY = re.compile(
    r"\b(?:today|tonight|last night|yesterday|this morning|again|earlier|keeps|every day|"
    r"still|this week|last week|recently|days ago|a few days ago)\b"
)
_ABUSE_OVER = re.compile(
    r"\b(?:was|were|used to|when i was|as a (?:kid|child|teen)|years ago|growing up|"
    r"childhood|in the past|escaped|left (?:him|her|them))\b"
)
_TRIED_TO_TAIL = re.compile(r"\b(?:tried|attempted|trying|attempting)\s+to\s+$")
_ALMOST_TAIL = re.compile(r"\b(?:almost|nearly)\s+$")
_JUST_NOW_TAIL = re.compile(r"\b(?:just|right now)\s+$")


def _self_harm_timing(match: re.Match[str], text: str) -> str | None:
    if _SELF_HARM_RECENT.search(_window(text, match, 0, 60)):
        return "self_harm:recent"
    return "self_harm"


def _conditional(match: re.Match[str], text: str, signal: str) -> str | None:
    """'I will kill myself if nothing changes' is ideation, not yet a decision."""
    after = text[match.end() : match.end() + 30]
    before = _clause_prefix(text, match.start())
    if _CONDITION_AFTER.search(after) or _CONDITION_BEFORE.search(before):
        return "ideation:active"
    return signal


def _intent_unless_conditional(match: re.Match[str], text: str) -> str | None:
    return _conditional(match, text, "intent")


def _not_past(match: re.Match[str], text: str) -> str | None:
    """'I was unresponsive' (last year) is history, not an emergency now."""
    if _WAS_BEFORE.search(_clause_prefix(text, match.start())):
        return None
    return "medical:emergency"


def _abuse_timing(match: re.Match[str], text: str) -> str | None:
    if _ABUSER_HERE_NOW.search(_window(text, match, 40, 60)):
        return "danger:now"
    return "abuse:ongoing"


def _abuse_past_or_recent(match: re.Match[str], text: str) -> str | None:
    window = _window(text, match, 40, 60)
    if _ABUSE_RIGHT_NOW.search(window):
        return "danger:now"
    if _ABUSE_LONG_AGO.search(window):
        return "abuse:past"
    if _ABUSE_LATELY.search(window):
        return "abuse:ongoing"
    return "abuse:past"


def _abuse_state(match: re.Match[str], text: str) -> str | None:
    if _ABUSE_OVER.search(_window(text, match, 50, 30)):
        return "abuse:past"
    return "abuse:ongoing"


def _third_reflexive(match: re.Match[str], text: str) -> str | None:
    """'my friend wants to kill herself' vs 'my brother killed himself' (bereavement)."""
    prefix = _prefix(text, match, 40)
    if _TRIED_TO_TAIL.search(prefix):
        return "behavior:attempt"
    verb = match.group("verb")
    if verb in {"killed", "hanged", "hung", "shot", "drowned", "poisoned"} and not (
        _ALMOST_TAIL.search(prefix)
    ):
        return "bereavement:suicide"
    if verb in {"cut", "cutting", "hurt", "hurting", "harm", "harming", "burning", "burn"}:
        return "self_harm"
    return "ideation:active"


def _attempt_just_now(match: re.Match[str], text: str) -> str | None:
    """'I just overdosed' is happening now; a bare 'I overdosed' may be history."""
    if _JUST_NOW_TAIL.search(_prefix(text, match, 20)):
        return "behavior:attempt_now"
    return "behavior:attempt"


_RULES: tuple[_Rule, ...] = (
    # --- suicidal ideation, active ---------------------------------------------------------
    _Rule(
        "ideation:active",
        ("myself",),
        _rx(r"\bkill(?:ing|ed)?\s+myself\b|\bend(?:ing)?\s+myself\b"),
        directed=True,
    ),
    _Rule(
        "ideation:active",
        ("commit",),
        _rx(
            r"\b(?:feel(?:ing)? like|want to|going to|might|considering|consider|contemplating)\s+"
            r"(?:just\s+)?commit(?:ting)?\b(?!\s+(?:to|a|an|the|my|this|that|crimes?|fraud))"
        ),
        directed=True,
    ),
    _Rule(
        "ideation:active",
        ("myself",),
        _rx(
            r"\b(?:use|using)\s+(?:it|them|a gun|the gun|my gun|a knife|the knife|the pills|"
            r"the rope)\s+on\s+myself\b"
        ),
        directed=True,
    ),
    _Rule(
        "ideation:passive",
        ("kill me",),
        _rx(
            r"\b(?:god|someone|somebody|please|wish (?:someone|somebody|something) would)\s+"
            r"(?:\w+\s+){0,2}kill me\b"
        ),
        directed=True,
    ),
    _Rule(
        "ideation:active",
        ("life",),
        _rx(r"\b(?:end|ending|take|taking)\s+my\s+(?:own\s+)?life\b"),
        directed=True,
    ),
    _Rule(
        "ideation:active",
        ("suicid",),
        _rx(r"\bcommit(?:ting)?\s+suicide\b|\bsuicidal\b"),
        directed=True,
    ),
    _Rule(
        "ideation:active",
        ("suicid", "myself", "ending", "taking my", "committing", "overdos"),
        _rx(
            r"\b(?:think|thinking|thought|thoughts|considering|consider|considered|contemplat\w+|"
            r"debating|fantasi[sz]\w+|ideation|urges?|obsess\w+|planning|research\w*|googl\w+|"
            r"look(?:ing|ed)? up)\s+(?:\w+\s+){0,2}?(?:about\s+|of\s+|on\s+|into\s+)?(?:suicide|"
            r"killing myself|ending (?:it|my life|things)|taking my (?:own )?life|"
            r"committing|overdos\w+)\b"
        ),
        directed=True,
    ),
    _Rule(
        "ideation:active",
        ("die", "dead", "commit", "alive"),
        _rx(
            r"\bwant(?:ed|ing|s)?\s+to\s+(?:\w+\s+)?(?:die|be dead|commit|not be alive)\b"
            r"|\b(?:ready|deserve|deserved|prepared)\s+to\s+die\b"
            r"|\bshould\s+(?:just\s+)?(?:go\s+)?die\b|\blet me die\b"
            r"|\bi\s+(?:just\s+)?need to die\b"
        ),
        directed=True,
    ),
    _Rule(
        "ideation:active",
        ("want",),
        _rx(
            r"\bwant(?:ed|ing|s)?\s+to\s+(?:just\s+)?(?:swallow|overdose|hang myself|shoot myself|"
            r"jump off|jump from|slit|drown myself|take (?:all|a bunch|the whole|every|\d+)|"
            r"cut my wrists|set myself on fire)\b"
        ),
        directed=True,
    ),
    _Rule(
        "ideation:active",
        ("end",),
        _rx(
            r"\bend\s+it\s+all\b|\b(?:want|wanted|going|ready|decided|planning|plan|about|"
            r"trying|tempted|urge|urges)\s+to\s+(?:just\s+)?end\s+(?:it|things|everything)\b"
            r"(?!\s+with\b)"
        ),
        directed=True,
    ),
    # --- suicidal ideation, passive (wish to be dead) ---------------------------------------
    _Rule(
        "ideation:passive",
        (
            "want",
            "wish",
            "better off",
            "reason",
            "point",
            "purpose",
            "live",
            "worth",
            "tired",
            "sick",
            "hope",
            "need",
            "care",
            "wouldn't",
            "dying",
            "death",
            "not being",
            "not existing",
            "being dead",
            "can't",
            "no one",
            "nobody",
            "noone",
            "go to sleep",
            "sleep and",
            "asleep and",
            "close my eyes",
        ),
        _rx(
            r"\b(?:don't|no longer|never|not|didn't)\s+(?:really\s+|even\s+)?want(?:ing)?\s+to\s+"
            r"(?:live|be alive|exist|be here|wake up|go on|keep going|continue living|carry on|"
            r"be around)\b"
            r"|\bwish(?:ing|ed)?\s+(?:that\s+)?i\s+(?:was|were|'d|had|could|would|wouldn't|didn't|"
            r"never)\s+(?:\w+\s+)?(?:dead|die|died|disappear|gone|never been born|been born|"
            r"not exist|exist|not alive|not here|sleep forever|not wake up|wake up|born)\b"
            r"|\bwish(?:ing|ed)?\s+(?:that\s+)?i\s+(?:wasn't|weren't)\s+(?:\w+\s+)?(?:alive|here|"
            r"born|around)\b"
            r"|\bwhat's the point (?:of|in) (?:living|life|being alive|going on|staying alive)\b"
            r"|\b(?:no one|nobody|noone) (?:would|will|'d|'ll) (?:even )?(?:miss|notice|care)"
            r"(?: about)?(?: me)? if i (?:was|were|'m|am|died|disappeared|left|killed myself|"
            r"was gone|were gone)\b"
            r"|\b(?:go to sleep|sleep|fall asleep|close my eyes) and (?:never|not) wake up\b"
            r"|\bbetter off\s+(?:dead|without me|if i (?:was|were)n't|if i (?:was|were) (?:gone|"
            r"dead))"
            r"|\b(?:no|nothing|not (?:a|one|any))\s+(?:\w+\s+)?(?:reasons?|point|purpose)\s+"
            r"(?:to|in|of|for)\s+(?:live|living|being alive|go on|going on|keep going|existing|"
            r"life|staying)\b|\bnothing (?:left )?to live for\b|\bnot worth living\b"
            r"|\blife (?:is|'s|isn't) (?:not )?worth (?:living|it)\b"
            r"|\b(?:tired|sick)\s+of\s+(?:living|being alive|existing|life|breathing|this life)\b"
            r"|\bhope\s+i\s+(?:\w+\s+)?(?:die|don't wake up|never wake up|get hit|get killed)\b"
            r"|\b(?:want|wish|need)\s+(?:it|everything|this|the pain|all of this|life|it all)\s+"
            r"(?:all\s+)?to\s+(?:end|stop|be over)\b"
            r"|\bwant(?:ed)?\s+to\s+(?:just\s+)?(?:disappear|vanish|sleep forever|stop existing|"
            r"not exist|go to sleep and never wake up|never wake up|be gone|leave this (?:world|"
            r"earth)|give up on life|go away forever|fade away)\b"
            r"|\bdon't care if i (?:die|live|wake up)\b|\bwouldn't (?:mind|care) (?:if i )?"
            r"(?:dying|died|die|dead)\b"
            r"|\b(?:dying|death)\s+(?:would be|is|seems)\s+(?:a\s+)?(?:relief|easier|better|"
            r"the only way|peaceful|the answer)\b"
            r"|\b(?:no|lost the|losing the|lost my) will to live\b|\bgiv(?:e|en|ing) up on life\b"
            r"|\b(?:think|thinking|thought|dream|dreaming)\s+(?:a lot\s+)?(?:about|of)\s+"
            r"(?:dying|death|my death|not being here|not existing|being dead)\b"
            r"|\bcan't (?:live|keep living|go on living) (?:like this|anymore|any longer|"
            r"this way)\b"
            r"|\bwant(?:s)? out\b(?=\s*(?:[.!,]|$|of (?:this|life|here)))"
            r"|\bi\s+(?:just\s+)?want\s+to\s+(?:sleep|rest)\s+(?:forever|and not wake up)\b"
        ),
        directed=True,
    ),
    # --- bare mention of suicide (topic, not yet about the person) -------------------------
    _Rule("mention:suicide", ("suicide",), _rx(r"\bsuicide\b"), directed=True),
    # --- self-harm ----------------------------------------------------------------------------
    _Rule(
        "self_harm",
        ("myself", "self harm", "urge", "cutting", "relaps", "cuts"),
        _rx(
            r"\b(?:cut|cutting|cuts|burn|burning|burned|burnt|hurt|hurting|harm|harming|scratch|"
            r"scratching|hit|hitting|punch|punching|bite|biting|stab|stabbing|carve|carving|"
            r"starve|starving|choke|choking|strangle|strangling|bruise|bruising)\s+myself\b"
            r"(?!\s+(?:at the gym|playing|while|during|lifting|skiing|running|by accident|"
            r"accidentally|cooking))"
            r"|\bi'm\s+(?:\w+\s+)?cutting\b(?!\s+(?:the|a|an|some|my\s+(?:hair|nails|fingers?)|"
            r"onions?|vegetables|paper|back|down|out|class|classes|school|ties|corners|costs|"
            r"it|them|off))"
            r"|\bself harm(?:ing|ed)?\b|\burges?\s+to\s+(?:cut|self harm|burn|hurt myself)\b"
            r"|\bcutting again\b|\b(?:relapsed|relapse)\s+(?:on|with|into)?\s*(?:self harm|"
            r"cutting)\b|\b(?:my|fresh|new|deep)\s+(?:cuts|self harm scars)\b"
        ),
        directed=True,
        refine=_self_harm_timing,
    ),
    # --- methods ------------------------------------------------------------------------------
    _Rule(
        "method:overdose",
        ("overdos", "💊", "mg", "lethal", "pills", "tablets", "medication"),
        _rx(
            r"\boverdos(?:e|ed|es|ing)\b|💊|\b\d{3,}mg\b|\blethal dose\b"
            r"|\b(?:all|whole|entire|bottle|box|pack|handful|bunch|stash|rest)\s+(?:of\s+)?"
            r"(?:my\s+|the\s+|these\s+|those\s+)?(?:pills|tablets|medication|sleeping pills)\b"
        ),
        strong=True,
    ),
    _Rule(
        "method:overdose",
        (
            "paracetamol",
            "tylenol",
            "ibuprofen",
            "advil",
            "motrin",
            "aspirin",
            "nurofen",
            "excedrin",
            "aleve",
            "naproxen",
            "sleeping pills",
        ),
        _rx(
            r"\b(?:paracetamol|tylenol|ibuprofen|advil|motrin|aspirin|nurofen|excedrin|aleve|"
            r"naproxen|sleeping pills)\b"
        ),
    ),
    _Rule(
        "method:overdose",
        _PILL_KEYS,
        _rx(r"\b" + _PILLS.replace("medication|medicine|", "") + r"\b"),
        needs_risk=True,
    ),
    _Rule(
        "method:poison",
        (
            "antifreeze",
            "anti-freeze",
            "ethylene",
            "poison",
            "cyanide",
            "nitrite",
            "arsenic",
            "pesticide",
            "weed killer",
            "paraquat",
            "drain cleaner",
            "bleach",
            "cleaner",
            "chemicals",
            "detergent",
        ),
        _rx(
            r"\b(?:antifreeze|anti-freeze|ethylene glycol|rat poison|cyanide|sodium nitrite|"
            r"nitrite|arsenic|pesticide|weed killer|paraquat|drain cleaner|poison myself|"
            r"(?:drink|drinking|drank|swallow|swallowed)\s+(?:\w+\s+)?(?:bleach|cleaner|"
            r"poison|chemicals|detergent))\b"
        ),
        strong=True,
    ),
    _Rule("method:poison", ("bleach", "poison"), _rx(r"\b(?:bleach|poison)\b"), needs_risk=True),
    _Rule(
        "method:hanging",
        ("myself", "noose", "neck"),
        _rx(
            r"\b(?:hang|hanging|hanged|hung)\s+myself\b|\bnoose\b|\brope\s+around\s+my\s+neck\b"
            r"|\bbelt\s+around\s+my\s+neck\b|\bstrangle myself\b"
        ),
        strong=True,
    ),
    _Rule(
        "method:hanging",
        ("rope", "hang", "belt", "cord", "ligature", "beam", "rafter"),
        _rx(r"\b(?:rope|ropes|hang|hanging|belt|cord|ligature|beam|rafters?)\b"),
        needs_risk=True,
    ),
    _Rule(
        "method:firearm",
        ("myself", "trigger", "blow my", "🔫", "gun", "bullet", "barrel", "pistol"),
        _rx(
            r"\bshoot(?:ing)?\s+myself\b|\bpull(?:ing)?\s+the\s+trigger\b|\bblow\s+my\s+"
            r"(?:brains|head)\b|\bgun\s+(?:to|in|against)\s+my\s+(?:head|mouth|temple|chest)\b"
            r"|🔫|\b(?:bullet|barrel|pistol)\s+(?:in|through|to|against)\s+my\s+(?:head|brain|"
            r"mouth|temple)\b"
        ),
        strong=True,
    ),
    _Rule(
        "method:firearm",
        (
            "gun",
            "pistol",
            "rifle",
            "shotgun",
            "firearm",
            "bullet",
            "revolver",
            "handgun",
            "glock",
            "ammo",
            "shells",
        ),
        _rx(
            r"\b(?:guns?|pistol|rifle|shotgun|firearm|bullets?|revolver|handgun|glock|ammo|"
            r"shells)\b"
        ),
        needs_risk=True,
    ),
    _Rule(
        "method:jumping",
        ("jump", "bridge", "enough", "survive"),
        _rx(
            r"\bjump(?:ing|ed)?\s+(?:off of|off|from|out of|in front of)\s+"
            r"(?:a|the|my|this|that|an)?\s*"
            r"(?:\w+\s+)?(?:bridge|building|roof|rooftop|cliff|balcony|window|ledge|overpass|"
            r"tower|parking|train|car|truck|bus|\d+)"
            r"|\bhow\s+(?:tall|high)\s+(?:is|are|does|do|would|should)\s+(?:the|a)\s+"
            r"(?:\w+\s+){0,3}bridge\b"
            r"|\b(?:high|tall)\s+enough\s+to\s+(?:die|kill)\b|\b\d+\s+floors\s+enough\b"
            r"|\bsurvive\s+(?:a|the)\s+(?:fall|jump)\b"
        ),
        strong=True,
    ),
    _Rule(
        "method:jumping",
        ("bridge", "roof", "cliff", "ledge", "balcony", "overpass", "floors", "jump"),
        _rx(
            r"\b(?:bridge|bridges|rooftop|roof|cliff|ledge|balcony|overpass|\d+ floors|"
            r"jump|jumping)\b"
        ),
        needs_risk=True,
    ),
    _Rule(
        "method:cutting",
        ("wrist", "throat", "vein", "arter", "bleed", "cut", "stab"),
        _rx(
            r"\b(?:slit|slitting|slice|slicing|cut|cutting|open)\s+(?:my\s+|your\s+|the\s+)?"
            r"(?:wrists?|throat|veins?|arteries|artery)\b|\bbleed(?:ing)?\s+out\b"
            r"|\bcut\s+(?:deep|deeper|vertically)\b|\bstab(?:bing)?\s+myself\b"
        ),
        strong=True,
    ),
    _Rule(
        "method:cutting",
        ("razor", "blade", "knife", "knives", "box cutter", "scissors", "🔪"),
        _rx(r"\b(?:razor|razors|blade|blades|knife|knives|box cutter|scissors)\b|🔪"),
        needs_risk=True,
    ),
    _Rule(
        "method:vehicle",
        (
            "train",
            "bus",
            "truck",
            "lorry",
            "traffic",
            "subway",
            "tube",
            "crash",
            "driv",
            "drove",
            "swerve",
            "steer",
            "ram",
        ),
        _rx(
            r"\b(?:in front of|under|into)\s+(?:a|the|an)?\s*(?:oncoming\s+|moving\s+)?"
            r"(?:train|bus|truck|lorry|traffic|subway|tube)\b|\btrain\s*tracks\b"
            r"|\b(?:crash|drive|drove|driving|swerve|steer|ram)\s+(?:my\s+car\s+|myself\s+)?"
            r"(?:off|into)\s+(?:a|the)\s+(?:tree|wall|pole|bridge|cliff|river|lake|oncoming|"
            r"truck|barrier|building|ditch|ocean|sea)\b"
        ),
        strong=True,
    ),
    _Rule(
        "method:vehicle",
        ("tracks", "railway", "railroad", "train", "traffic", "highway", "motorway", "freeway"),
        _rx(r"\b(?:tracks|railway|railroad|train|traffic|highway|motorway|freeway)\b"),
        needs_risk=True,
    ),
    _Rule(
        "method:drowning",
        ("drown", "walk"),
        _rx(
            r"\bdrown(?:ing)?\s+myself\b|\bwalk(?:ing|ed)?\s+into\s+the\s+(?:ocean|sea|river|"
            r"lake|water|waves|surf)\b"
        ),
        strong=True,
    ),
    _Rule(
        "method:suffocation",
        ("suffocat", "plastic bag", "helium", "carbon monoxide", "exit bag", "charcoal", "exhaust"),
        _rx(
            r"\bsuffocat\w+\s+myself\b|\bplastic\s+bag\s+over\s+my\s+head\b|\bhelium\b|"
            r"\bcarbon\s+monoxide\b|\bexit\s+bag\b|\bcharcoal\s+(?:burning|grill|burner)\b|"
            r"\bexhaust\s+(?:pipe|fumes)\b"
        ),
        strong=True,
    ),
    _Rule(
        "method:fire",
        ("fire", "burn myself", "immolat", "douse"),
        _rx(
            r"\bset\s+myself\s+on\s+fire\b|\bburn\s+myself\s+(?:alive|to death)\b|"
            r"\bself[\s-]?immolat\w+\b|\bdouse\s+myself\b"
        ),
        strong=True,
    ),
    _Rule(
        "method:seeking",
        (
            "overdose",
            "way",
            "method",
            "means",
            "option",
            "painless",
            "pain free",
            "pain-free",
            "least painful",
            "suicide",
            "kill myself",
            "end my life",
            "end it",
            "commit",
            "lethal",
            "fatal",
            "deadly",
            "toxic",
            "how many",
            "how much",
            "kill me",
            "kill you",
            "enough",
            "die",
            "get killed",
            "how long",
            "survive",
            "what happens",
            "research",
            "look",
            "googl",
        ),
        _rx(
            r"\b(?:painless|painlessly|easiest|easy|quickest|quick|fastest|best|surest|most "
            r"effective|reliable|peaceful|least painful|foolproof|effective|successful|quiet)\s+"
            r"(?:\w+\s+)?(?:way|ways|method|methods|means|option|options)\s+(?:to|of|for)\s+"
            r"(?:\w+\s+)?(?:die|dying|death|kill myself|suicide|commit|end it|end my life|go|do "
            r"it|overdose|unalive)\b"
            r"|\b(?:painless(?:ly)?|pain[\s-]?free|least painful|most painless)\s+(?:way|ways|"
            r"method|methods|death|suicide|exit|option)\b"
            r"|\bhow\s+(?:can|do|would|should|could)\s+i\s+(?:\w+\s+)?(?:suicide|kill myself|"
            r"end my life|end it|commit)\b"
            r"|\b(?:research(?:ing|ed)?|look(?:ing|ed)? up|googl(?:e|ing|ed))\s+(?:\w+\s+)?"
            r"(?:ways|methods|how to (?:die|do it|kill))\b|\bways to (?:finally )?do it\b"
            r"|\b(?:lethal|fatal|deadly|toxic)\s+(?:dose|amount|dosage|quantity)\b"
            r"|\bhow\s+(?:many|much)\s+(?:\w+\s+){0,4}(?:to|would|will|does it take to|"
            r"do i need to|"
            r"until|till|before|is|are|can)\s+(?:\w+\s+){0,2}(?:kill|die|od|overdose|fatal|lethal|"
            r"stop my heart|end it|do it|do the job|work|enough)\b"
            r"|\b(?:would|will|could|can|does|do|is|are)\s+(?:\w+\s+){0,3}(?<!to )"
            r"(?:kill me|kill you|"
            r"be (?:enough|lethal|fatal)|enough to (?:kill|die|do it|od|overdose|be fatal)|"
            r"lethal|fatal)\b"
            r"|\bcan\s+(?:you|i|someone|a person|people)\s+(?:die|get killed)\s+(?:from|of|by|if)\b"
            r"|\bhow\s+long\s+(?:(?:does|would|will|did)\s+it\s+take|it\s+takes?)\s+to\s+"
            r"(?:die|bleed out|pass out|lose consciousness|suffocate|drown)\b"
            r"|\bis\s+\d+\s*\w*\s+enough\b|\bsurvive\s+(?:a|an|the)?\s*(?:fall|overdose|od)\b"
            r"|\bwhat\s+happens\s+if\s+(?:you|i)\s+(?:take|swallow|drink|overdose)\b"
            r"|\bhow\s+(?:many|much)\s+(?:\w+\s+){0,4}(?:is|are)\s+(?:too much|too many|"
            r"dangerous|lethal|fatal|deadly|an overdose)\b"
            r"|\bcan\s+(?:you|i|someone|a person|people)\s+overdose\b"
            r"|\b(?:methods?|ways?)\s+(?:to|of)\s+(?:suicide|kill myself|die|commit|end it)\b"
        ),
        needs_risk=False,
    ),
    _Rule(
        "method:seeking",
        ("how many", "how much"),
        _rx(r"\bhow\s+(?:many|much)\s+(?:would|do|will|should)\s+i\s+(?:need|take)\b"),
        needs_risk=True,
    ),
    # --- intent and plan ------------------------------------------------------------------------
    _Rule(
        "intent",
        (
            "kill myself",
            "end my life",
            "take my",
            "commit",
            "overdose",
            "hang myself",
            "shoot myself",
            "slit",
            "jump",
            "drown",
            "suffocate",
            "gas myself",
            "end it",
            "kill me",
            "pills",
            "medication",
            "tablets",
            "swallow",
            "finish myself",
        ),
        _rx(
            r"(?:\bgoing to|'ll|\bwill|\babout to|\bintend to|\bdecided to|\bready to|\bmight|"
            r"\bdetermined to|\bmade up my mind to|\bplanning to|\bplan to|\bplanning on)\s+"
            r"(?:(?:finally|just|really|actually|definitely|probably|try to)\s+)*"
            r"(?:kill myself|end my life|take my (?:own )?life|commit suicide|commit|overdose|"
            r"hang myself|shoot myself|slit my wrists|jump|drown myself|suffocate|"
            r"gas myself|end it(?: all)?|kill me|take them all|swallow them all|take (?:all\s+)?"
            r"(?:the|my|them|these|those)\s+(?:pills|"
            r"medication|tablets)|swallow (?:them|all|the pills|my pills)|finish myself)\b"
        ),
        directed=True,
        refine=_intent_unless_conditional,
    ),
    _Rule(
        "intent",
        (
            "do it",
            "go through",
            "try again",
            "attempt again",
            "do this",
            "end things",
            "finish it",
            "this is it",
            "made up my mind",
            "stop me",
            "decided",
            "doing it",
            "it's time",
        ),
        _rx(
            r"(?:\bgoing to|'ll|\bwill|\babout to|\bready to|\bdecided to|\bfinally going to)\s+"
            r"(?:(?:finally|just|really|actually|definitely|probably)\s+)*(?:do it|go through "
            r"with it|try again|attempt again|do this|end things|finish it)\b"
            r"|\bthis is it\b|\bmade up my mind\b|\bno one (?:can|will) stop me\b|\bi've decided\b"
            r"|\bi'm doing it\b|\bit's time\b"
        ),
        directed=True,
        needs_risk=True,
        refine=_intent_unless_conditional,
    ),
    _Rule(
        "intent",
        (
            "killing myself",
            "tonight",
            "today",
            "tomorrow",
            "right now",
            "this week",
            "dead",
            "gone",
        ),
        _rx(
            r"\bi'm\s+(?:\w+\s+)?killing myself\b|\bkilling myself\s+(?:tonight|today|tomorrow|"
            r"soon|now|right now|this week)\b"
            r"|\b(?:want|wanna|going|ready|need|planning|plan)\s+to\s+(?:die|end it(?: all)?|"
            r"kill myself|end my life)\s+(?:\w+\s+){0,2}?(?:tonight|today|tomorrow|right now|"
            r"this weekend|this week)\b"
            r"|\b(?:thinking (?:of|about)|considering|contemplating)\s+(?:ending it(?: all)?|"
            r"killing myself|ending my life|suicide|doing it)\s+(?:\w+\s+){0,2}?(?:tonight|"
            r"today|tomorrow|right now|this weekend)\b"
            r"|\b(?:supposed to|going to|will|i'll)\s+be\s+(?:dead|gone)\s+(?:in|by|before|soon|"
            r"tomorrow|tonight)\b"
        ),
        directed=True,
    ),
    _Rule(
        "plan",
        ("plan",),
        _rx(
            r"\b(?:suicide|exit)\s+plan\b|\bplan(?:ned|ning)?\s+(?:to|on|for)\s+(?:\w+\s+)?"
            r"(?:kill myself|killing myself|end (?:it|my life)|ending (?:it|my life)|die|dying|"
            r"commit|suicide|overdose|overdosing|hang myself|jump)\b"
            r"|\bi\s+know\s+(?:exactly\s+)?(?:how|when|where)\s+(?:i'm going to|i'll|i'd|to|"
            r"i\s+would)\s+(?:do it|end it|kill myself|go)\b"
        ),
        directed=True,
    ),
    _Rule(
        "plan",
        ("plan", "date", "day", "time", "place", "method", "know"),
        _rx(
            r"\b(?:i've|got|made|making|have|had|i've made|i've had|i've got)\s+(?:a|the|my|"
            r"it all)\s+(?:\w+\s+)?plan(?:ned)?\b|\bmy plan is\b|\bplanned\s+(?:it|everything|this|"
            r"out|my|how|when|the)\b|\bplanning\s+(?:it|everything|this|my)\b"
            r"|\b(?:set|picked|chose|chosen|decided on|have)\s+(?:a|the)\s+(?:date|day|time|"
            r"place|method)\b|\bi\s+know\s+(?:exactly\s+)?(?:how|when|where)\s+(?:i'm going to|"
            r"i'll|to)\s+do\b"
        ),
        directed=True,
        needs_risk=True,
    ),
    # --- time ------------------------------------------------------------------------------------
    _Rule(
        "time:now",
        ("right now", "as i", "as we", "at this moment", "it now", "this minute", "about to"),
        _rx(
            r"\bright now\b|\babout to\b|\bas (?:i|we) (?:speak|type|write)\b|\bat this moment\b"
            r"|\b(?:do|doing) it now\b|\bthis minute\b"
        ),
    ),
    _Rule(
        "time:tonight",
        ("tonight", "evening", "midnight", "before", "when"),
        _rx(
            r"\btonight\b|\bthis evening\b|\bmidnight\b|\bbefore (?:morning|"
            r"sunrise|dawn)\b|\bwhen (?:everyone|they|my \w+) (?:is|are|goes?|"
            r"falls?) (?:asleep|to sleep|to bed|out)\b"
        ),
    ),
    _Rule(
        "time:today",
        ("today", "this morning", "this afternoon", "hour", "min"),
        _rx(
            r"\btoday\b|\bthis (?:morning|afternoon)\b|\bin (?:an|a few|\d+|a "
            r"couple of) (?:hours?|minutes?|mins?)\b"
        ),
    ),
    _Rule("time:tomorrow", ("tomorrow",), _rx(r"\btomorrow\b")),
    _Rule(
        "time:soon",
        ("week", "day", "soon", "after", "birthday", "eve", "end of", "deadline", "count"),
        _rx(
            r"\b(?:this|next) (?:weekend|week|friday|saturday|sunday|monday|"
            r"tuesday|wednesday|thursday)\b|\bon (?:monday|tuesday|wednesday|"
            r"thursday|friday|saturday|sunday)\b|\bsoon\b|\bin (?:a|\d+|a few|a "
            r"couple of) days\b|\bafter (?:christmas|the holidays|new year'?s?|my "
            r"birthday|the funeral|exams|graduation)\b|\bon my birthday\b|"
            r"\bnew year'?s? eve\b|\bby the end of (?:the|this) (?:week|month)\b|"
            r"\bdeadline\b|\bcount(?:ing)?\s*down\b|\bwithin (?:a|the) week\b"
        ),
    ),
    _Rule(
        "time:date",
        ("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "on the "),
        _rx(
            r"\b(?:jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+"
            r"\d{1,2}(?:st|nd|rd|th)?\b|\bon the \d{1,2}(?:st|nd|rd|th)\b"
        ),
    ),
    # --- access to means --------------------------------------------------------------------------
    _Rule(
        "means:access",
        (
            "pills",
            "tablets",
            "medication",
            "gun",
            "pistol",
            "rifle",
            "shotgun",
            "rope",
            "noose",
            "knife",
            "blade",
            "razor",
            "bottle",
            "poison",
            "antifreeze",
            "bleach",
            "helium",
            "charcoal",
            "bullet",
            "ammo",
            "paracetamol",
            "tylenol",
            "ibuprofen",
        ),
        _rx(
            r"\b(?:i've|i've got|got|have|holding|hold|stockpil\w+|hoard\w+|saved up|saving up|"
            r"collected|collecting|hiding|hid|keep|kept|sitting (?:here )?with|staring at)\s+"
            r"(?:\w+\s+){0,3}?(?:pills|tablets|medication|gun|pistol|rifle|shotgun|rope|noose|"
            r"knife|blade|blades|razor|razors|bottle|poison|antifreeze|bleach|helium|charcoal|"
            r"bullets?|ammo|paracetamol|tylenol|ibuprofen)\b"
            r"(?!\s+(?:for (?:my|a|the) (?:headache|pain|anxiety|depression|back|period|cold|"
            r"allergies)|prescribed|from my doctor))"
        ),
        directed=True,
        needs_risk=True,
    ),
    _Rule(
        "means:access",
        (
            "here",
            "with me",
            "in my",
            "in front of me",
            "next to me",
            "beside me",
            "ready",
            "on me",
            "lined up",
            "counted out",
            "loaded",
            "cocked",
            "noose",
            "tied",
            "edge",
            "ledge",
            "roof",
            "bridge",
            "tracks",
            "top of",
            "cliff",
            "balcony",
        ),
        _rx(
            r"\b(?:i've|i've got|got|have|holding|it's|they're|it is|they are|everything's|"
            r"everything is)\s+(?:(?:them|it|everything|all of them|all|the stuff|enough|the "
            r"pills|the gun|the rope|the knife|the blade)\s+)(?:all\s+)?(?:right\s+)?(?:here|with "
            r"me|in (?:my hand|my hands|my pocket|front of me|my room|my bag|my lap)|next to me|"
            r"beside me|ready|on me|lined up|counted out)\b"
            r"|\b(?:it's|they're|everything's|everything is|it is|they are)\s+(?:all\s+)?"
            r"(?:right\s+)?(?:here|ready|in my hand|next to me|lined up|counted out)\b"
            r"|\b(?:pills|gun|rope|knife|blade|noose|razor|bottle|tablets)s?\s+(?:is|are)\s+"
            r"(?:right\s+)?(?:here|ready|in my hand|next to me|in front of me|on my (?:desk|bed|"
            r"table|lap))\b"
            r"|\b(?:loaded|cocked)\s+(?:the|my|a)\s+gun\b|\bgun\s+is\s+loaded\b"
            r"|\bnoose\s+is\s+(?:ready|tied|up)\b|\btied\s+(?:the|a)\s+(?:noose|rope)\b"
            r"|\bi'm\s+(?:standing\s+|sitting\s+)?(?:on|at)\s+(?:the\s+)?(?:edge|ledge|roof|rooftop|"
            r"bridge|tracks|top of|cliff|balcony)\b"
        ),
        directed=True,
        needs_risk=True,
    ),
    # --- suicidal behaviour: attempts and preparation --------------------------------------------
    _Rule(
        "behavior:attempt",
        (
            "tried",
            "attempt",
            "surviv",
            "pumped",
            "almost",
            "nearly",
            "edge",
            "bridge",
            "roof",
            "overdose",
        ),
        _rx(
            r"\b(?:tried|attempted|attempting)\s+to\s+(?:kill myself|end (?:my life|"
            r"it(?: all)?)|take my (?:own )?life|commit(?: suicide)?|overdose|hang myself|"
            r"drown myself|shoot myself|jump|slit my wrists|cut my wrists|strangle myself|"
            r"suffocate|poison myself|die|od|swallow|take (?:all|a bunch|the whole))\b"
            r"|\b(?:suicide|failed|botched)\s+attempts?\b|\battempted\s+suicide\b"
            r"|\b(?:survived|survivor of)\s+(?:a|an|my|the|two|\d+)?\s*(?:suicide\s+)?"
            r"(?:attempts?|overdose)\b"
            r"|\b(?:stomach (?:was )?pumped|pumped my stomach|pumped stomach)\b"
            r"|\b(?:almost|nearly)\s+(?:killed myself|went through with it|ended it|did it)\b"
            r"|\b(?:talked|pulled|stopped)\s+(?:myself\s+|me\s+)?(?:down|back|off)\s+(?:from|off)"
            r"\s+(?:the\s+)?(?:ledge|edge|bridge|roof)\b"
            r"|\bi\s+(?:have\s+)?overdosed\b|\bmy\s+overdose\b"
        ),
        directed=True,
        refine=_attempt_just_now,
    ),
    _Rule(
        "behavior:attempt",
        ("attempt", "hospitali", "psych", "inpatient", "icu", "a&e"),
        _rx(
            r"\b(?:my|first|second|third|last|previous|past|latest|recent|\d+(?:st|nd|rd|th))\s+"
            r"attempts?\b(?!\s+(?:at|to (?!kill|end|die)))|\battempted\b"
            r"|\b(?:hospitali[sz]ed|psych ward|psychiatric (?:ward|hospital|unit)|inpatient|"
            r"icu|a&e)\s+(?:after|for|because)\b"
        ),
        directed=True,
        needs_risk=True,
    ),
    _Rule(
        "behavior:attempt_now",
        (
            "took",
            "taken",
            "swallow",
            "downed",
            "popped",
            "ingested",
            "chugged",
            "drank",
            "drunk",
            "overdosed on",
            "taking",
        ),
        _rx(
            r"\b(?:took|taken|swallowed|downed|popped|ingested|chugged|drank|drunk|overdosed on|"
            r"taking|swallowing)\b(?:\s+\S+){0,6}?\s+(?:pills|tablets|capsules|paracetamol|"
            r"tylenol|ibuprofen|advil|aspirin|medication|\d+mg|bottle|antifreeze|bleach|poison|"
            r"rat poison|xanax|insulin|sleeping pills|painkillers|eye drops|visine|cough "
            r"(?:medicine|syrup)|hand sanitizer|cleaning (?:powder|product)|"
            + _PILLS[3:-1]
            + r")\b"
        ),
        directed=True,
        refine=_took_quantity,
    ),
    _Rule(
        "behavior:attempt_now",
        (
            "wrist",
            "throat",
            "vein",
            "bleeding",
            "waiting",
            "taking",
            "i've",
            "did it",
            "done",
            "took",
        ),
        _rx(
            r"\bi've\s+(?:just\s+)?(?:taken|swallowed|done it)\b|\bi\s+(?:just\s+)?did\s+it\b"
            r"|\bit's done\b|\bi\s+took\s+(?:them|it|everything)\b|\bi've\s+taken\s+(?:them|it)\b"
        ),
        directed=True,
        needs_risk=True,
    ),
    _Rule(
        "behavior:attempt_now",
        ("wrist", "throat", "vein", "bleeding", "waiting", "taking"),
        _rx(
            r"\b(?:i\s+(?:just\s+)?(?:cut|slit|sliced|opened)\s+my\s+(?:wrists?|throat|veins?))\b"
            r"|\bi'm\s+bleeding\s+(?:a lot|out|heavily|everywhere|badly)\b"
            r"|\bjust\s+waiting\s+(?:now|to die|for it to (?:kick in|work|happen))\b"
            r"|\bwaiting\s+for\s+(?:the pills|it|them|the meds|the medication)\s+to\s+"
            r"(?:kick in|work)\b|\bi'm\s+(?:actively\s+)?taking\s+(?:the\s+)?pills\b"
        ),
        directed=True,
        refine=_attempt_timing,
    ),
    _Rule(
        "behavior:attempt_now",
        ("edge", "ledge", "roof", "bridge", "tracks", "railway", "cliff", "balcony", "top of"),
        _rx(
            r"\bi'm\s+(?:standing\s+|sitting\s+|lying\s+|laying\s+)?(?:on|at)\s+(?:the\s+)?"
            r"(?:edge|ledge|roof|rooftop|bridge|tracks|railway|cliff|balcony|top of)\b"
        ),
        directed=True,
        needs_risk=True,
    ),
    _Rule(
        "behavior:preparatory",
        ("stockpil", "hoard", "saving up", "saved up"),
        _rx(
            r"\b(?:stockpil\w+|hoard\w+|saving up|saved up)\s+(?:\w+\s+){0,2}(?:pills|tablets|"
            r"medication|antidepressants|painkillers|sleeping pills|\w+mg)\b"
        ),
        directed=True,
    ),
    _Rule(
        "behavior:preparatory",
        (
            "note",
            "letter",
            "message",
            "video",
            "away",
            "affairs",
            "loose ends",
            "will",
            "funeral",
            "rope",
            "noose",
            "practi",
            "rehears",
            "helium",
            "nitrite",
            "charcoal",
        ),
        _rx(
            r"\b(?:wrote|written|writing|write|drafted|drafting|left|leaving|finished|prepared|"
            r"preparing|typed|typing)\s+(?:\w+\s+){0,2}?(?:suicide|goodbye|farewell|last)\s+"
            r"(?:note|notes|letter|letters|message|messages|video)\b"
            r"|\b(?:gave|giving|give|given)\s+away\s+(?:all\s+)?(?:of\s+)?my\s+(?:stuff|things|"
            r"belongings|possessions|clothes|pets?|cat|dog|games|books|money|savings)\b"
            r"|\b(?:affairs in order|loose ends|(?:made|wrote|written|writing|finished) (?:a|my) "
            r"will|updated my "
            r"will|planned my (?:own )?funeral|tested the rope|practi[cs]ed (?:hanging|tying|it)|"
            r"tied (?:a|the) noose|rehears\w+ (?:it|my))\b"
            r"|\b(?:bought|ordered|purchased)\s+(?:a\s+|the\s+|some\s+)?(?:rope|noose|helium|"
            r"nitrite|sodium nitrite|charcoal)\b"
        ),
        directed=True,
    ),
    _Rule(
        "behavior:preparatory",
        (
            "note",
            "letter",
            "arrangements",
            "got rid",
            "goodbye",
            "deleted",
            "last",
            "bought",
            "buying",
            "ordered",
            "purchased",
            "got",
            "getting",
            "picked up",
            "went and",
        ),
        _rx(
            r"\b(?:wrote|written|writing|drafted|drafting|left|leaving|finished|prepared|"
            r"preparing)\s+(?:my\s+(?:\w+\s+)?(?:note|notes|letter|letters)|(?:\w+\s+)?(?:notes|"
            r"letters))\b|\bmade (?:my|the|all the) arrangements\b|\bgot rid of (?:most|all) of my"
            r"\b"
            r"|\b(?:said|saying)\s+(?:my\s+)?goodbyes?\b|\bdeleted\s+(?:all\s+)?my\s+(?:accounts|"
            r"social media|photos)\b|\bmy\s+last\s+(?:days|weeks|night|day)\b|\blast days\b"
            r"|\b(?:bought|buying|ordered|purchased|got|getting|picked up|went and (?:got|bought))"
            r"\s+(?:\w+\s+){0,2}?(?:a\s+|the\s+|some\s+)?(?:rope|gun|pistol|shotgun|rifle|bullets|"
            r"ammo|shells|pills|paracetamol|tylenol|razor|razors|blades|knife|poison|antifreeze)\b"
        ),
        directed=True,
        needs_risk=True,
    ),
    # --- farewells -------------------------------------------------------------------------------
    _Rule(
        "farewell",
        (
            "by the time",
            "other side",
            "goodbye",
            "my last",
            "my final",
            "love",
            "sorry",
            "won't be",
            "i'll be",
        ),
        _rx(
            r"\bby the time (?:you|anyone|someone|they|people) (?:read|reads|see|sees|find|finds) "
            r"this\b|\bsee (?:you|ya|y'all) (?:all )?on the other side\b"
            r"|\bthis is (?:my )?goodbye\b|\b(?:this is|this will be|these are)\s+my\s+(?:last|"
            r"final)\s+(?:message|post|words|text|note|day|night|goodbye)\b"
            r"|\bgoodbye\s+(?:everyone|everybody|world|cruel world|forever|guys|y'all|reddit|my "
            r"friends|all)\b|\b(?:final|last) goodbye\b"
            r"|\b(?:tell|let)\s+(?:my\s+)?(?:\w+\s+){0,2}(?:know\s+)?(?:i|that i)\s+(?:love|loved|"
            r"am sorry|'m sorry)\b"
            r"|\bi won't be (?:here|around|alive)\s+(?:tomorrow|much longer|anymore|for long|by|"
            r"next|to see)\b|\bi'll\s+be\s+(?:gone|dead)\s+(?:by|before|soon|tomorrow|tonight|in)\b"
        ),
        directed=True,
    ),
    _Rule(
        "farewell",
        ("goodbye", "sorry for everything", "forgive me", "the end", "thank you for everything"),
        _rx(
            r"\bgoodbye\b|\bi'm sorry for everything\b|\bplease forgive me\b|\bforgive me\b"
            r"|\bthis is the end\b|\bthank you for everything\b"
        ),
        directed=True,
        needs_risk=True,
    ),
    # --- harm to others --------------------------------------------------------------------------
    _Rule(
        "harm_others",
        ("kill", "murder", "stab", "shoot", "hurt", "strangl", "beat", "attack", "poison"),
        _rx(
            r"(?:\bgoing to|'ll|\bwill|\bwant to|\babout to|\bplanning to|\bplan to|\bready to|"
            r"\bcould|\bfantasi[sz]e about|\bfantasi[sz]ing about|\bthinking about|\bthink about|"
            r"\bdream about|\bi'd like to|\bi'm going to)\s+(?:\w+\s+)?(?:kill|killing|murder|"
            r"murdering|stab|stabbing|shoot|shooting|hurt|hurting|strangle|strangling|beat up|"
            r"beating up|attack|attacking|poison|poisoning)\s+(?:him|her|them|you|someone|somebody|"
            r"people|everyone|everybody|my (?!(?:self|feelings|back|knee|chances|reputation)\b)"
            r"\w+|the (?:\w+)|that (?:\w+)|this (?:\w+)|these|those|a (?:\w+)|kids|students|"
            r"classmates|coworkers|teachers?)\b"
        ),
        directed=True,
    ),
    _Rule(
        "harm_others",
        (
            "shoot",
            "mass",
            "bring",
            "pay",
            "blow",
            "bomb",
            "hurt",
            "hit",
            "stab",
            "attack",
            "strangl",
        ),
        _rx(
            r"\bshoot(?:ing)?\s+up\s+(?:the|my|a|our)\s+(?:school|office|work|workplace|church|"
            r"mall|class|campus|party)\b|\bmass\s+(?:shooting|murder|killing)\b"
            r"|\bbring(?:ing)?\s+a\s+(?:gun|knife|bomb)\s+to\s+(?:school|work|class|church)\b"
            r"|\bmake\s+(?:them|him|her|everyone|them all)\s+pay\b|\b(?:blow|bomb)\s+up\s+"
            r"(?:the|my|our)\s+(?:school|office|work|building)\b"
            r"|\bi've\s+(?:\w+\s+)?(?:hurt|hit|stabbed|attacked|strangled)\s+(?:someone|him|her|"
            r"them|my \w+)\b|\bi\s+(?:hurt|stabbed|attacked|strangled)\s+(?:someone|my \w+)\b"
        ),
        directed=True,
    ),
    # --- abuse and danger from others ------------------------------------------------------------
    _Rule(
        "abuse:ongoing",
        (
            "hit",
            "beat",
            "hurt",
            "chok",
            "strangl",
            "punch",
            "kick",
            "slap",
            "rap",
            "molest",
            "touch",
            "abus",
            "threat",
            "burn",
            "whip",
            "starv",
            "lock",
            "stalk",
            "follow",
            "being",
            "getting",
        ),
        _rx(
            r"\b" + _AGENT + r"\s+(?:still\s+|always\s+|keeps?\s+|constantly\s+|often\s+|"
            r"sometimes\s+|regularly\s+)?(?:hits|beats|hurts|chokes|strangles|punches|kicks|"
            r"slaps|rapes|molests|touches|abuses|threatens|burns|whips|starves|locks)\s+me\b"
            r"|\b"
            + _AGENT
            + r"(?:'s|'re|\s+(?:is|are|has been|have been|keeps|kept))\s+(?:\w+\s+)?"
            r"(?:hitting|beating|hurting|killing|choking|strangling|punching|kicking|slapping|raping|"
            r"molesting|touching|abusing|threatening|stalking|following)\s+me\b"
            r"|\bi'm\s+(?:being|getting)\s+(?:abused|beaten|hit|raped|molested|trafficked|"
            r"threatened|stalked)\b"
        ),
        refine=_abuse_timing,
    ),
    _Rule(
        "abuse:past",
        (
            "hit",
            "beat",
            "hurt",
            "chok",
            "strangl",
            "punch",
            "kick",
            "slap",
            "rape",
            "molest",
            "touch",
            "abuse",
            "threat",
            "assault",
            "groom",
        ),
        _rx(
            r"\b" + _AGENT + r"\s+(?:\w+\s+)?(?:hit|beat|hurt|choked|strangled|punched|kicked|"
            r"slapped|raped|molested|touched|abused|threatened|assaulted|groomed)\s+me\b"
        ),
        refine=_abuse_past_or_recent,
    ),
    _Rule(
        "abuse:ongoing",
        ("kill me", "hurt me", "threaten"),
        _rx(
            r"\b(?:said|says|threatened|threatens|keeps saying)\s+(?:that\s+)?(?:he|she|they)"
            r"(?:'d| would| will|'ll| is going to|'s going to)\s+(?:kill|hurt)\s+me\b"
            r"|\bthreaten(?:s|ed|ing)?\s+to\s+(?:kill|hurt|beat|hit|stab|shoot)\s+me\b"
        ),
    ),
    _Rule(
        "abuse:past",
        ("abus", "rape", "molest", "assault", "beaten", "groom", "traffick"),
        _rx(
            r"\bi\s+was\s+(?:\w+\s+)?(?:abused|raped|molested|assaulted|beaten|groomed|"
            r"trafficked)\b|\b(?:sexually|physically|emotionally|verbally)\s+abus\w+\b"
            r"|\b(?:sexual (?:abuse|assault)|childhood (?:abuse|trauma)|rape|raped)\b"
        ),
        refine=_abuse_past_or_recent,
    ),
    _Rule(
        "abuse:ongoing",
        ("domestic", "abusive", "afraid", "scared", "terrified", "won't let me", "locked me"),
        _rx(
            r"\b(?:domestic\s+(?:violence|abuse)|abusive\s+(?:relationship|home|household|partner|"
            r"husband|boyfriend|girlfriend|wife|parents?|father|mother|dad|mom|family))\b"
            r"|\b(?:afraid|scared|terrified)\s+(?:to go home|of (?:my (?:\w+ )?"
            r"(?:husband|boyfriend|"
            r"dad|father|partner|stepdad|stepfather|mom|mother)|him|her))\b"
            r"|\bwon't let me (?:leave|go out|see)\b|\blocked me in\b"
        ),
        refine=_abuse_state,
    ),
    _Rule(
        "danger:now",
        (
            "kill me",
            "hurt me",
            "attack me",
            "stab me",
            "shoot me",
            "rape me",
            "break",
            "broke",
            "intruder",
            "hiding",
            "gun",
            "knife",
        ),
        _rx(
            r"\b" + _AGENT + r"(?:'s|'re|\s+(?:is|are))\s+(?:trying to|going to|about to|coming to|"
            r"threatening to)\s+(?:kill|hurt|attack|stab|shoot|rape)\s+me\b"
            r"|\b(?:break|breaking|broke)\s+(?:in|into (?:my|the|our) (?:house|home|room|flat|"
            r"apartment))\b|\bintruder\b"
            r"|\bi'm\s+hiding\s+(?:from|in)\b"
            r"|\b(?:outside|at)\s+(?:my|the)\s+(?:door|window|house|room|flat)\s+with\s+a\s+"
            r"(?:gun|knife|weapon|bat)\b"
            r"|\b" + _AGENT + r"\s+(?:has|is holding|is waving|pulled)\s+a\s+(?:gun|knife)\b"
        ),
    ),
    # --- medical emergencies ---------------------------------------------------------------------
    _Rule(
        "medical:emergency",
        (
            "breath",
            "unconscious",
            "unresponsive",
            "wak",
            "pulse",
            "seiz",
            "convuls",
            "heart attack",
            "stroke",
            "chest pain",
            "overdosing",
            "anaphyla",
            "allergic",
            "throat",
            "blue",
            "blood",
            "bleeding",
            "ambulance",
            "911",
            "999",
            "112",
            "bleach",
            "poison",
            "antifreeze",
            "drain cleaner",
            "passed out",
        ),
        _rx(
            r"\b(?:isn't|not|stopped|is not)\s+breathing\b|\bunconscious\b|\bunresponsive\b"
            r"|\b(?:won't|can't|isn't|not|doesn't)\s+wak(?:e|ing)\s+(?:him|her|them)\b"
            r"|\b(?:he|she|they|my \w+)\s+(?:won't|isn't|is not|can't|doesn't)\s+"
            r"wak(?:e|ing)\s+up\b"
            r"|\bno pulse\b|\b(?:having|had|is having) (?:a )?seizures?\b|\bseizing\b"
            r"|\bconvuls\w+\b"
            r"|\b(?:having|had|is having|'s having|i'm having) (?:a )?(?:heart attack|stroke)\b"
            r"|\bchest pains?\b|\boverdosing\b"
            r"|\banaphyla\w+\b|\ballergic reaction\b|\bthroat (?:is )?closing\b|\blips (?:are |"
            r"turning |went )?blue\b|\bturning blue\b|\b(?:vomiting|throwing up|coughing up) "
            r"blood\b|\bbleeding (?:heavily|a lot|badly|everywhere|so much|out)\b"
            r"|\b(?:won't|can't) stop (?:the )?bleeding\b|\blost a lot of blood\b"
            r"|\bblood everywhere\b|\b(?:please|someone|somebody|need to|help)\s+call\s+(?:an\s+)?"
            r"(?:ambulance|911|999|112)\b"
            r"|\bneed an ambulance\b|\b(?:swallowed|drank|drunk|ingested)\s+(?:\w+\s+)?"
            r"(?:bleach|poison|antifreeze|rat poison|drain cleaner)\b|\bpassed out\b(?=.*"
            r"\b(?:pills|blood|won't|can't|breathing)\b)"
        ),
        refine=_not_past,
    ),
    _Rule(
        "medical:breathing",
        ("breath",),
        _rx(
            r"\b(?:can't|cannot|can not|hard to|struggling to)\s+"
            r"breathe?\b"
        ),
    ),
    # --- other people at risk (reflexive forms are inherently third person) ----------------------
    _Rule(
        "third_party",
        ("herself", "himself", "themselves", "themself"),
        _rx(
            r"\b(?P<verb>kill|killing|kills|killed|hurt|hurting|harm|harming|cut|cutting|hang|"
            r"hanging|hanged|hung|shoot|shooting|shot|drown|drowning|drowned|poison|poisoning|"
            r"poisoned|starve|starving|burn|burning|end|ending|unalive)\s+(?:herself|himself|"
            r"themselves|themself)\b"
        ),
        refine=_third_reflexive,
    ),
    _Rule(
        "third_party",
        ("her own", "his own", "their own", "her life", "his life", "their life"),
        _rx(r"\b(?:end|ending|take|taking)\s+(?:her|his|their)\s+(?:own\s+)?life\b"),
        refine=lambda match, text: "ideation:active",
    ),
    _Rule(
        "bereavement:suicide",
        (
            "suicide",
            "took her",
            "took his",
            "took their",
            "killed herself",
            "killed himself",
            "killed themselves",
        ),
        _rx(
            r"\b(?:committed|died by|died of|death by|lost (?:\w+ )?(?:\w+ )?to|after (?:her|his|"
            r"their))\s+suicide\b|\btook\s+(?:her|his|their)\s+(?:own\s+)?life\b"
            r"|\bkilled\s+(?:herself|himself|themselves)\b"
        ),
    ),
    # --- retractions never lower urgency, but volunteers should see them -------------------------
    _Rule(
        "retraction",
        (
            "jk",
            "j/k",
            "jking",
            "kidding",
            "joking",
            "mind",
            "nvm",
            "forget",
            "ignore",
            "didn't mean",
            "disregard",
            "joke",
            "scratch that",
            "fine now",
            "ok now",
            "okay now",
            "doesn't matter",
        ),
        _rx(
            r"\b(?:jk|j/k|jking|just kidding|just joking|only joking|i'm joking|i was joking|"
            r"kidding|never ?mind|nvm|nevermind|forget (?:it|that|what i said|i said anything)|"
            r"ignore (?:that|me|what i said|my last message)|i didn't mean (?:it|that)|"
            r"didn't mean it|disregard (?:that|this|my last)|it was a joke|scratch that|"
            r"i'm fine now|i'm ok(?:ay)? now|doesn't matter)\b"
        ),
    ),
    # --- distress without suicidal content -------------------------------------------------------
    _Rule(
        "distress",
        ("help", "sos"),
        _rx(r"\b(?:^(?:please\s+)?(?:help|sos)(?:\s+(?:please|me))?[\s!.?]*$)"),
    ),
    _Rule(
        "distress:hopeless",
        (
            "hope",
            "better",
            "future",
            "point",
            "change",
            "way out",
            "trapped",
            "give up",
            "giving up",
            "gave up",
            "i'm done",
        ),
        _rx(
            r"\b(?:hopeless|hopelessness|no hope|never (?:going to )?get better|no future|"
            r"pointless|what's the point|no point|nothing will (?:ever )?change|can't see a "
            r"future|no way out|trapped|give up|giving up|gave up|i'm done)\b"
        ),
    ),
    _Rule(
        "distress:severe",
        ("can't", "breaking point", "end of my rope", "falling apart", "breakdown", "burden"),
        _rx(
            r"\bcan't (?:go on|keep (?:going|doing this)|do (?:this|it|life) anymore|take "
            r"(?:it|this|much more|any more|anymore)|handle (?:this|it|life) anymore|cope)\b"
            r"|\bbreaking point\b|\bend of my rope\b|\bfalling apart\b|\bbreakdown\b"
            r"|\b(?:i'm|i am|i feel like|feel like|feeling like) a burden\b"
            r"|\bburden (?:to|on) (?:everyone|my family|them)\b"
        ),
    ),
    _Rule(
        "distress",
        _DISTRESS_WORDS,
        _rx(r"\b(?:" + trie_pattern(_DISTRESS_WORDS) + r")\b"),
    ),
)

# Signals that make an ambiguous phrase ("I did it", "my plan") count. Deliberately excludes
# time, distress and the ambiguous phrases themselves.
_ANCHORS = frozenset(
    {
        "ideation:active",
        "ideation:passive",
        "mention:suicide",
        "self_harm",
        "self_harm:recent",
        "method:overdose",
        "method:poison",
        "method:hanging",
        "method:firearm",
        "method:jumping",
        "method:cutting",
        "method:vehicle",
        "method:drowning",
        "method:suffocation",
        "method:fire",
        "method:seeking",
        "intent",
        "plan",
        "behavior:attempt",
        "behavior:attempt_now",
        "behavior:preparatory",
        "farewell",
    }
)
_METHODS = frozenset(s for s in _ANCHORS if s.startswith("method:") and s != "method:seeking")
_NEAR_TIME = frozenset({"time:now", "time:tonight", "time:today", "time:tomorrow"})
_ANY_TIME = _NEAR_TIME | {"time:soon", "time:date"}
_IDEATION = frozenset({"ideation:active", "ideation:passive", "mention:suicide"})
_NEGATABLE = {
    "ideation:active": "negated:suicidal",
    "ideation:passive": "negated:suicidal",
    "mention:suicide": "negated:suicidal",
    "intent": "negated:suicidal",
    "plan": "negated:suicidal",
    "farewell": "negated:suicidal",
    "self_harm": "negated:self_harm",
    "self_harm:recent": "negated:self_harm",
    "behavior:attempt": "negated:attempt",
    "behavior:attempt_now": "negated:attempt",
    "behavior:preparatory": "negated:suicidal",
    "harm_others": "negated:harm_others",
    "means:access": "negated:means",
}


@dataclass(frozen=True, slots=True)
class Findings:
    """What the rules saw in one message.

    ``signals`` are confirmed; ``pending`` are ambiguous phrases that only count if the message —
    or the conversation, when messages are combined — also carries an anchoring risk signal.
    """

    signals: frozenset[str]
    pending: frozenset[str]
    # The normalised text with idioms masked: what the statistical model reads.
    text: str


def _clause_prefix(text: str, start: int) -> str:
    window = text[max(0, start - 90) : start]
    breaks = list(_CLAUSE_BREAK.finditer(window))
    return window[breaks[-1].end() :] if breaks else window


def _about_third_party(prefix: str) -> bool:
    """Is the last subject named before the match someone else ("my friend said she ...")?"""
    subjects = _SUBJECT.findall(prefix)
    return bool(subjects) and bool(subjects[-1][1])


def _mask(text: str, signals: set[str], present: frozenset[str]) -> str:
    for signal, keys, pattern, check in _IDIOMS:
        if keys and present.isdisjoint(keys):
            continue
        if pattern.search(text) is None:
            continue
        pieces: list[str] = []
        position = 0
        for match in pattern.finditer(text):
            if check is not None and not check(match, text):
                continue
            signals.add(signal)
            pieces.append(text[position : match.start()])
            pieces.append(" ~ ")
            position = match.end()
        if pieces:
            pieces.append(text[position:])
            text = "".join(pieces)
    return text


# Idioms get the same fast compilation as the rules (see _rx).
_IDIOMS = tuple(
    (signal, keys, _rx(pattern.pattern), check) for signal, keys, pattern, check in _IDIOM_SOURCES
)

_ALL_KEYS = sorted(
    {key for rule in _RULES for key in rule.keys}
    | {key for _, keys, _, _ in _IDIOMS for key in keys}
)
# One pass finds, at every position, the longest key starting there; every key contained in it
# is then present too. Exact, and far cheaper than testing each key with ``in``.
_KEY_SCAN = re.compile("(?=(" + trie_pattern(_ALL_KEYS) + "))")
_CONTAINED = {key: frozenset(other for other in _ALL_KEYS if other in key) for key in _ALL_KEYS}


def _present_keys(text: str) -> frozenset[str]:
    present: set[str] = set()
    for found in set(_KEY_SCAN.findall(text)):
        present |= _CONTAINED[found]
    return frozenset(present)


# How far (in characters) an ambiguous phrase may sit from an unambiguous risk phrase and still be
# read as part of the same thought: "I'd take the pills" next to "I want to die", but not a mention
# of medication three sentences away in a long post.
_NEAR = 120


def _near(start: int, end: int, spans: list[tuple[int, int]], reach: int) -> bool:
    return any(
        other_start - reach <= end and start <= other_end + reach
        for other_start, other_end in spans
    )


def _scan(text: str) -> Findings:
    normalized = normalize(text)
    signals: set[str] = set()
    if is_unsupported_language(text):
        signals.add("lang:unsupported")
    present = _present_keys(normalized)
    masked = _mask(normalized, signals, present)
    anchors: list[tuple[int, int]] = []
    weak: list[tuple[str, int, int, bool]] = []
    for rule in _RULES:
        if rule.keys and present.isdisjoint(rule.keys):
            continue
        if rule.first_match_enough:
            if rule.signal not in signals and rule.pattern.search(masked):
                signals.add(rule.signal)
                if rule.strong:
                    signals.add("_method:strong")
            continue
        for match in rule.pattern.finditer(masked):
            signal = rule.signal
            needs_risk = rule.needs_risk
            if rule.refine is not None:
                refined = rule.refine(match, masked)
                if refined is None:
                    continue
                signal = refined.removeprefix("?")
                needs_risk = needs_risk or refined.startswith("?")
            third = rule.signal == "third_party"
            if rule.directed:
                prefix = _clause_prefix(masked, match.start())
                if _NEGATED_TAIL.search(prefix):
                    signals.add(_NEGATABLE.get(signal, "negated:suicidal"))
                    anchors.append(match.span())
                    continue
                third = _about_third_party(prefix)
            if needs_risk:
                weak.append((signal, match.start(), match.end(), third))
                continue
            signals.add(signal)
            if rule.strong:
                signals.add("_method:strong")
            if third:
                signals.add("third_party")
            if signal in _ANCHORS:
                anchors.append(match.span())
    pending: set[str] = set()
    weak_methods = [(start, end) for signal, start, end, _ in weak if signal in _METHODS]
    weak_acts = [(start, end) for signal, start, end, _ in weak if signal not in _METHODS]
    distressed = any(signal.startswith("distress") for signal in signals)
    timed = bool(signals & _ANY_TIME)
    for signal, start, end, third in weak:
        if signal in _METHODS:
            # A method word is part of the suicidal thought only when it sits next to it.
            confirmed = _near(start, end, anchors, _NEAR) or _near(start, end, weak_acts, 40)
        else:
            # An ambiguous act ("I did it", "I'm going to do it", "wrote my letters") counts in
            # a message that is about risk or distress, next to a method word, or — for a stated
            # intention or preparation — next to a time ("I'm doing it tonight").
            confirmed = (
                bool(anchors)
                or distressed
                or _near(start, end, weak_methods, 40)
                or (timed and signal in {"intent", "behavior:preparatory", "plan"})
            )
        if confirmed:
            signals.add(signal)
            if third:
                signals.add("third_party")
        else:
            pending.add(signal)
            if third:
                pending.add("third_party")
    if "💊" in normalized:
        signals.add("emoji:pill")
    return Findings(frozenset(signals), frozenset(pending - signals), masked)


# Chat messages are short; a long text (a pasted post) is analysed every time rather than pinned
# in memory: 8192 cached entries of at most this many characters bound the cache's size.
CACHE_MAX_CHARS = 4000


@lru_cache(maxsize=8192)
def _scan_cached(text: str) -> Findings:
    return _scan(text)


def scan(text: str) -> Findings:
    """Rule findings for one message (cached: chat context repeats the same messages)."""
    return _scan_cached(text) if len(text) <= CACHE_MAX_CHARS else _scan(text)


def clear_cache() -> None:
    _scan_cached.cache_clear()


def _anchored(signals: frozenset[str]) -> bool:
    return bool(signals & _ANCHORS) or any(s.startswith("negated:") for s in signals)


def resolve(findings: Iterable[Findings]) -> frozenset[str]:
    """Confirmed signals over a conversation.

    An ambiguous phrase left pending in one message ("I have them right here", "I'm doing it
    tonight") counts when ANOTHER message of the conversation carries an unambiguous risk signal
    (or a denial, which still puts the topic on the table). Within one message, proximity has
    already decided.
    """
    items = list(findings)
    signals: set[str] = set()
    for item in items:
        signals |= item.signals
    anchored = [_anchored(item.signals) for item in items]
    for index, item in enumerate(items):
        if item.pending and any(flag for other, flag in enumerate(anchored) if other != index):
            signals |= item.pending
    return frozenset(signals)


def rule_level(signals: frozenset[str]) -> Level:
    """The floor the rules set (SPEC §2 table), from confirmed signals."""
    has = signals.__contains__
    method = bool(signals & _METHODS)
    ideation = bool(signals & _IDEATION)
    near_time = bool(signals & _NEAR_TIME)
    any_time = bool(signals & _ANY_TIME)
    means = has("means:access")
    intent = has("intent")
    plan = has("plan")
    seeking = has("method:seeking")
    prep = has("behavior:preparatory")
    strong_method = has("_method:strong")
    third = has("third_party")
    risk_about_person = bool(signals & (_ANCHORS - {"bereavement:suicide"}))

    if (
        has("behavior:attempt_now")
        or has("danger:now")
        or has("medical:emergency")
        or has("farewell")
        or ((intent or plan) and (any_time or means))
        or ((ideation or seeking or intent or plan) and means)
        or (method and means and near_time)
        or (strong_method and bool(signals & {"time:now", "time:tonight"}))
        or (prep and (near_time or means or intent))
        or (has("harm_others") and (near_time or means or has("method:firearm")))
        or (third and risk_about_person and (near_time or means))
        or (method and (ideation or intent) and near_time)
    ):
        return Level.imminent
    if (
        (method and (ideation or intent or seeking or plan or any_time))
        or strong_method
        or seeking
        or intent
        or plan
        or prep
        or has("behavior:attempt")
        or has("self_harm:recent")
        or has("harm_others")
        or has("abuse:ongoing")
        or has("medical:breathing")
        or (third and risk_about_person)
    ):
        return Level.high
    if (
        ideation
        or method
        or has("self_harm")
        or has("abuse:past")
        or has("bereavement:suicide")
        or has("lang:unsupported")
    ):
        return Level.moderate
    if any(s.startswith(("distress", "negated:")) for s in signals) or has("retraction"):
        return Level.low
    return Level.none
