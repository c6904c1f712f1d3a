"""Resource cards: a volunteer's message whose body is a reviewed resource, not typed text.

A card is stored as a message of kind ``resource`` whose ``text`` holds the card as compact
JSON (a snapshot: editing or removing the resource later never changes a transcript). Keeping it
in ``text`` means the visitor's erasure and the retention purge, which clear ``text``, clear the
card too with no code of their own, and the group commit's fixed INSERT stays as it is.

On the wire the card is its own field (``resource``) and ``text`` carries a plain rendering, so
a client that knows nothing of cards still shows something true.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, ValidationError

KIND = "resource"


class ResourceCard(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    resource_id: str
    title: str
    text: str
    url: str | None = None
    phone: str | None = None


def encode(card: ResourceCard) -> str:
    return card.model_dump_json(exclude_none=True)


def decode(kind: str | None, text: str | None) -> ResourceCard | None:
    """The card a stored message holds, or None (another kind, or erased / purged)."""
    if kind != KIND or not text:
        return None
    try:
        return ResourceCard.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None


def plain(card: ResourceCard) -> str:
    parts = [f"{card.title}: {card.text}"]
    if card.phone:
        parts.append(f"Call {card.phone}")
    if card.url:
        parts.append(card.url)
    return " — ".join(parts)


def wire_text(kind: str | None, text: str | None) -> tuple[str | None, ResourceCard | None]:
    """What a message frame carries: the plain text, and the card when it is one."""
    card = decode(kind, text)
    if card is None:
        return (None if kind == KIND else text), None
    return plain(card), card
