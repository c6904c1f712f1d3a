"""Is this text in a language the engine can read?

The rules and model only understand English. A message in another language must not be scored as
calm just because no English pattern matched: it is flagged ``lang:unsupported`` so a human who
reads the language (or a translator) looks at it. Detection is deliberately cheap and biased towards
"English" for mixed or very short text, because code-switched English chat is common and still
readable by the rules.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_FOREIGN_SCRIPT = re.compile(r"[^\W\d_\u0000-\u024f]")

# Frequent English words, including chat spellings; a message with several of them is English.
_ENGLISH = frozenset(
    """
    the and i you to a of is it my me in that this was for not be have with but so just do what
    are on can i'm don't want feel he she they we all no how like why at am know it's im dont
    get got been if or your when there about would will i've i'll really think life anymore
    one out up an as go going never even feel feeling help please need anyone someone people
    myself time day today tonight now still because cant can't wont won't did does
    has had her him them their our us from by any more some much too very here want wanna
    gonna lol ok okay yes yeah hi hey hello thanks thank sorry die dead kill pills
    """.split()
)

# Frequent function words of other languages that are NOT also common English words.
_FOREIGN = frozenset(
    """
    que de la el los las por para con una muy pero porque estoy quiero tengo yo soy mi mis
    nada todo esta este eso nadie siempre nunca también hacer vida morir ayuda ayudame
    je suis pas et les des est une moi mon ma mes tout rien avec pour mais vie mourir aide
    ich nicht und der das bin ist mich mir ein eine zu mein meine nichts leben sterben hilfe
    não eu estou você uma com sou muito minha meu quero ajuda morrer nao vida
    ik niet het een ben mijn wil jag och inte är jeg ikke og er jeg
    saya aku tidak ingin mau ben bir değil ve nie jestem się chcę sono voglio mio che il di per
    aiuto socorro pomoc vivir más mas veux peux mehr kann quiere puedo puede vou posso
    """.split()
)

_HELP_WORDS = frozenset({"hola", "ayuda", "ayudame", "bonjour", "aide", "hilfe", "socorro",
                         "ajuda", "aiuto", "pomoc", "hallo", "ciao", "olá", "ola", "salut"})


def is_unsupported_language(text: str) -> bool:
    """True when the text is mostly a language or script other than English."""
    words = _WORD.findall(text.lower())
    if not words:
        return False  # emoji, digits, punctuation: not a language question
    if not text.isascii():
        # Latin letters (with accents) end at U+024F; beyond that: Greek, Cyrillic, Arabic,
        # Hebrew, Devanagari, CJK, Hangul, Thai... none of which the rules can read.
        letters = sum(len(word) for word in words)
        foreign_script = len(_FOREIGN_SCRIPT.findall(text))
        if letters >= 2 and foreign_script / letters > 0.3:
            return True
    english = sum(1 for word in words if word in _ENGLISH)
    foreign = sum(1 for word in words if word in _FOREIGN)
    if english == 0 and (foreign >= 1 or any(word in _HELP_WORDS for word in words)):
        return True
    return foreign >= 2 and foreign > 2 * english
