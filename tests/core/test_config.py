"""Production refuses development fallbacks; development needs nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Environment, Settings
from app.main import create_app
from tests.conftest import shared_triage


def test_development_runs_on_the_embedded_default() -> None:
    settings = Settings(env=Environment.development)
    assert settings.is_sqlite


@pytest.mark.parametrize("url", [None, "sqlite+aiosqlite:///./beacon.db"])
def test_production_refuses_the_embedded_database(url: str | None) -> None:
    values: dict[str, object] = {"env": Environment.production}
    if url is not None:
        values["database_url"] = url
    with pytest.raises(ValidationError, match="BEACON_DATABASE_URL"):
        Settings(**values)  # type: ignore[arg-type]


async def test_production_serve_refuses_to_start_without_partners(database_url: str) -> None:
    settings = Settings(env=Environment.production, database_url=database_url)
    app = create_app(settings, triage=shared_triage)
    with pytest.raises(RuntimeError, match="BEACON_PARTNERS_FILE"):
        async with app.router.lifespan_context(app):
            pass


async def test_production_starts_with_postgres_and_partners(
    database_url: str, tmp_path: Path
) -> None:
    partners = tmp_path / "partners.json"
    partner = {
        "name": "line",
        "url": "http://127.0.0.1:9/hook",
        "secret": "s3cret-s3cret-s3cret",
        "phone": "+1 555 0100",
        "locales": ["en"],
        "levels": ["imminent"],
    }
    partners.write_text(json.dumps({"partners": [partner]}))
    settings = Settings(
        env=Environment.production, database_url=database_url, partners_file=partners
    )
    app = create_app(settings, triage=shared_triage)
    async with app.router.lifespan_context(app):
        assert app.state.beacon.settings.env is Environment.production
