"""Safety-message templates per locale (JSON files in ``templates/``), never free text.

Each file gives the emergency number by region (``en-GB`` -> ``GB``) with a wording for an
unknown region, and the messages escalation sends. Templates may use only ``{emergency}``,
``{partner}`` and ``{phone}``; every text keeps a route to immediate help (the emergency
number) and follows safe-messaging guidance: no method detail, no promise of unconditional
confidentiality (tests/escalation/test_templates.py checks both).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, field_validator

DEFAULT_LOCALE = "en"
PLACEHOLDERS = frozenset({"emergency", "partner", "phone"})


class MessageKind(StrEnum):
    safety = "safety"
    safety_no_partner = "safety_no_partner"
    # For a chat a volunteer already holds when it turns imminent: no "a person is coming", no
    # other line to call - just the route to immediate help, and the chat goes on.
    safety_in_chat = "safety_in_chat"
    handoff_started = "handoff_started"
    handoff_failed = "handoff_failed"
    handoff_failed_no_partner = "handoff_failed_no_partner"
    handed_off = "handed_off"


class TemplateFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    locale: str
    emergency: dict[str, str]
    messages: dict[MessageKind, str]

    @field_validator("emergency")
    @classmethod
    def _has_default(cls, value: dict[str, str]) -> dict[str, str]:
        if "default" not in value:
            raise ValueError("emergency needs a 'default' wording")
        return value

    @field_validator("messages")
    @classmethod
    def _complete(cls, value: dict[MessageKind, str]) -> dict[MessageKind, str]:
        missing = set(MessageKind) - set(value)
        if missing:
            raise ValueError(f"missing messages: {sorted(missing)}")
        for kind, text in value.items():
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            if not fields <= PLACEHOLDERS:
                raise ValueError(f"{kind}: unknown placeholders {sorted(fields - PLACEHOLDERS)}")
            if "emergency" not in fields:
                raise ValueError(f"{kind}: every message must give the emergency route")
        return value


@dataclass(frozen=True, slots=True)
class Rendered:
    kind: MessageKind
    locale: str
    text: str


@cache
def available_locales() -> tuple[str, ...]:
    folder = resources.files("app.escalation") / "templates"
    return tuple(
        sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))
    )


@cache
def load(locale: str) -> TemplateFile:
    source = resources.files("app.escalation") / "templates" / f"{locale}.json"
    return TemplateFile.model_validate(json.loads(source.read_text(encoding="utf-8")))


def split_locale(locale: str | None) -> tuple[str, str | None]:
    if not locale:
        return DEFAULT_LOCALE, None
    parts = locale.strip().replace("_", "-").split("-")
    language = parts[0].lower()
    region = parts[1].upper() if len(parts) > 1 and len(parts[1]) == 2 else None
    return language, region


def render(
    kind: MessageKind,
    locale: str | None,
    *,
    partner_name: str | None = None,
    partner_phone: str | None = None,
) -> Rendered:
    """The message for this locale (English when there is no template for the language).

    Without a partner, the ``*_no_partner`` variant is used so a text never shows a blank
    phone number."""
    language, region = split_locale(locale)
    if language not in available_locales():
        language = DEFAULT_LOCALE
    template = load(language)
    if partner_phone is None:
        if kind is MessageKind.safety:
            kind = MessageKind.safety_no_partner
        elif kind is MessageKind.handoff_failed:
            kind = MessageKind.handoff_failed_no_partner
    emergency = template.emergency.get(region or "", template.emergency["default"])
    text = template.messages[kind].format(
        emergency=emergency,
        partner=partner_name or "",
        phone=partner_phone or "",
    )
    return Rendered(kind=kind, locale=language, text=text)
