"""``POST /v1/triage?resources=1``: the resources that suit each result, for a partner app that
detects distress and wants to show the right help at once (issue 14).

Looked up when the answer is sent, after the stored triage part: an Idempotency-Key replay
repeats the triage result byte for byte and shows the library as it is now (a removed hotline
must not be replayed to someone in crisis).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.resources import schemas, service
from app.resources.errors import InvalidQuery
from app.triage.types import Level

DEFAULT_LOCALE = "en"


@dataclass(frozen=True, slots=True)
class Wanted:
    locale: str | None  # None: each result's own language, else DEFAULT_LOCALE


def parse_query(params: Mapping[str, str]) -> Wanted | None:
    flag = params.get("resources")
    locale = params.get("locale")
    if flag not in (None, "0", "1"):
        raise InvalidQuery("resources must be 0 or 1")
    if locale is not None:
        if not 2 <= len(locale) <= 16:
            raise InvalidQuery("locale must be a language tag such as en or es-MX")
        try:
            locale = schemas.primary_locale(locale)
        except ValueError as exc:
            raise InvalidQuery(str(exc)) from None
    if flag != "1":
        return None
    return Wanted(locale=locale)


def _locale_of(result: Mapping[str, Any], wanted: Wanted) -> str:
    if wanted.locale is not None:
        return wanted.locale
    for signal in result.get("signals", ()):
        if isinstance(signal, str) and signal.startswith("lang:"):
            code = signal.removeprefix("lang:")
            if code.isalpha() and 2 <= len(code) <= 3:
                return code
    return DEFAULT_LOCALE


async def _for(db: AsyncSession, result: dict[str, Any], wanted: Wanted) -> dict[str, Any]:
    level = Level(int(result["level_value"]))
    rows = await service.suited(db, level=level, locale=_locale_of(result, wanted))
    listed = [service.out(row).model_dump(mode="json") for row in rows]
    return {**result, "resources": listed}


async def with_resources(db: AsyncSession, body: dict[str, Any], wanted: Wanted) -> dict[str, Any]:
    if "items" in body:
        items = [await _for(db, item, wanted) for item in body["items"]]
        return {**body, "items": items}
    return await _for(db, body, wanted)
