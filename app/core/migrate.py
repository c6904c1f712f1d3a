"""Running Alembic from code: `beacon db upgrade`, start-up on SQLite, readiness checks."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine


def _find_migrations_dir() -> Path:
    # A source checkout (editable install) keeps migrations/ beside app/; an installed wheel
    # (the Docker image) keeps them in the working directory.
    beside_app = Path(__file__).resolve().parents[2] / "migrations"
    for candidate in (beside_app, Path.cwd() / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError("migrations/ not found beside the app package or in the working directory")


MIGRATIONS_DIR = _find_migrations_dir()


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade_to_head(database_url: str) -> None:
    """Blocking; call from a thread when an event loop is running (env.py runs its own loop)."""
    # Alembic's per-step INFO chatter ("Context impl ...") is noise in service logs.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    command.upgrade(alembic_config(database_url), "heads")


def head_revision() -> str | None:
    """The single head; several heads (unmerged branches) is a packaging error readyz reports."""
    heads = ScriptDirectory.from_config(alembic_config("")).get_heads()
    return heads[0] if len(heads) == 1 else ",".join(sorted(heads))


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )
