"""`beacon retention purge [--dry-run]`: one purge run now (cron, or before a backup).

Prints one JSON object (the cutoff and counts) on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.core.logging import configure_logging
from app.core.migrate import current_revision, head_revision, upgrade_to_head
from app.retention.worker import PurgeReport, run_purge


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beacon retention",
        description="Purge message text, wrap-up notes and partner request rows older than "
        "BEACON_RETENTION_DAYS (metadata and the audit trail stay).",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    purge = actions.add_parser("purge", help="purge now; one audit event records the counts")
    purge.add_argument(
        "--dry-run", action="store_true", help="only count what would be purged; change nothing"
    )
    return parser


class _NotAtHead(Exception):
    pass


async def _run(args: argparse.Namespace, settings: Settings) -> PurgeReport:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        revision = await current_revision(engine)
        if revision != head_revision():
            raise _NotAtHead(f"database is at revision {revision}, not head")
        return await run_purge(
            create_sessionmaker(engine),
            retention_days=settings.retention_days,
            batch_size=settings.retention_batch_size,
            trigger="cli",
            dry_run=args.dry_run,
        )
    finally:
        await engine.dispose()


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    if settings.is_sqlite:
        # The embedded default just works, as `beacon serve` does.
        upgrade_to_head(settings.database_url)
    try:
        report = asyncio.run(_run(args, settings))
    except _NotAtHead as exc:
        print(f"beacon retention: {exc}; run `beacon db upgrade` first", file=sys.stderr)
        return 1
    except (OSError, DBAPIError) as exc:
        print(f"beacon retention: database unavailable ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict()))
    return 0
