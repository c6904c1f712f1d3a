"""Who a visitor can call right now: the emergency number for their region and the hotline
partners that serve their language, for the visitor page's always-visible safety panel.

The same sources as the safety messages (``templates`` for the emergency number, the partners
file for hotlines), so the panel and the messages never disagree. Public information only: a
partner's name and phone, never its webhook URL or secret.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from app.escalation import templates
from app.escalation.partners import PartnersConfig, select_partners
from app.triage.types import Level

# What a dialler accepts in a tel: URI: digits, and a leading + (RFC 3966 global numbers).
_DIALLABLE = re.compile(r"^\+?[0-9]{2,15}$")


class Contact(BaseModel):
    label: str = Field(description="what to show, e.g. '999' or 'your local emergency number'")
    tel: str | None = Field(description="digits for a tel: link, or null when not a number")


class HotlineContact(BaseModel):
    name: str
    phone: str
    tel: str | None


class SafetyContacts(BaseModel):
    locale: str = Field(description="the template language used")
    emergency: Contact
    hotlines: list[HotlineContact]


def diallable(phone: str) -> str | None:
    """``+1 (555) 010-0`` -> ``+15550100``; None when the text is not a phone number."""
    compact = re.sub(r"[\s().\-]", "", phone)
    return compact if _DIALLABLE.match(compact) else None


def safety_contacts(partners: PartnersConfig | None, locale: str | None) -> SafetyContacts:
    language, region = templates.split_locale(locale)
    if language not in templates.available_locales():
        language = templates.DEFAULT_LOCALE
    emergency = templates.load(language).emergency
    label = emergency.get(region or "", emergency["default"])
    # The lines escalation would hand an imminent visitor of this locale to, best first.
    lines = select_partners(partners, locale, int(Level.imminent))
    return SafetyContacts(
        locale=language,
        emergency=Contact(label=label, tel=diallable(label)),
        hotlines=[
            HotlineContact(name=p.name, phone=p.phone, tel=diallable(p.phone)) for p in lines
        ],
    )
