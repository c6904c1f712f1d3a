"""Hotline partners from ``BEACON_PARTNERS_FILE`` and the routing policy between them.

File shape::

    {"partners": [{"name": "...", "url": "https://...", "secret": "...", "phone": "...",
                   "locales": ["en", "es"], "levels": ["imminent", "high"],
                   "fallback": false}]}

A partner serves a session when its ``locales`` contain the session's primary language (or
``"*"``) and its ``levels`` contain the session's urgency. The fallback partner (the one marked
``"fallback": true``, else the first listed) serves everything no one else does, so a session
always has somewhere to go while any partner is configured.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from app.triage.types import Level

LEVEL_NAMES = tuple(level.name for level in Level)


class PartnersFileError(RuntimeError):
    """The partners file is missing or invalid: the service refuses to start."""


def primary_language(locale: str | None) -> str | None:
    if not locale:
        return None
    code = locale.strip().replace("_", "-").split("-")[0].lower()
    return code or None


class Partner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\- ]+$")]
    url: HttpUrl
    secret: Annotated[SecretStr, Field(min_length=16)]
    phone: Annotated[str, Field(min_length=3, max_length=40, pattern=r"^[0-9+() \-]+$")]
    locales: Annotated[list[str], Field(min_length=1)]
    levels: Annotated[list[str], Field(min_length=1)]
    fallback: bool = False

    @field_validator("locales")
    @classmethod
    def _normalise_locales(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for raw in value:
            code = "*" if raw.strip() == "*" else primary_language(raw)
            if code is None:
                raise ValueError(f"invalid locale {raw!r}")
            if code not in out:
                out.append(code)
        return out

    @field_validator("levels")
    @classmethod
    def _known_levels(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in LEVEL_NAMES:
                raise ValueError(f"unknown level {name!r}; use one of {', '.join(LEVEL_NAMES)}")
        return value

    def serves(self, language: str | None, level: int) -> bool:
        in_locale = "*" in self.locales or (language is not None and language in self.locales)
        return in_locale and Level(level).name in self.levels


class PartnersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partners: Annotated[list[Partner], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [p.name for p in self.partners]
        if len(set(names)) != len(names):
            raise ValueError("partner names must be unique")
        if sum(p.fallback for p in self.partners) > 1:
            raise ValueError("at most one partner may be the fallback")
        return self

    @property
    def fallback(self) -> Partner:
        return next((p for p in self.partners if p.fallback), self.partners[0])

    def by_name(self, name: str | None) -> Partner | None:
        return next((p for p in self.partners if p.name == name), None)

    def candidates(self, locale: str | None, level: int) -> list[Partner]:
        """Partners to try, best first: those serving this locale and level, then the fallback."""
        language = primary_language(locale)
        chosen = [p for p in self.partners if p.serves(language, level)]
        # Exact language before wildcard partners.
        chosen.sort(key=lambda p: 0 if language in p.locales else 1)
        if self.fallback not in chosen:
            chosen.append(self.fallback)
        return chosen


def parse_partners(raw: str | bytes, *, source: str = "partners file") -> PartnersConfig:
    try:
        return PartnersConfig.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise PartnersFileError(f"invalid {source}: {problems}") from None


def load_partners(path: Path | None) -> PartnersConfig | None:
    """None when no file is configured (escalation then falls back to phone numbers only)."""
    if path is None:
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PartnersFileError(
            f"cannot read BEACON_PARTNERS_FILE {str(path)!r}: {exc.strerror}"
        ) from None
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PartnersFileError(
            f"BEACON_PARTNERS_FILE {str(path)!r} is not valid JSON: {exc}"
        ) from None
    return parse_partners(raw, source=f"BEACON_PARTNERS_FILE {str(path)!r}")


def select_partners(
    config: PartnersConfig | None, locale: str | None, level: int
) -> Sequence[Partner]:
    return [] if config is None else config.candidates(locale, level)
