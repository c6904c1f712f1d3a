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

from app.core.commands import DatabaseNotReady, command_database
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
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


async def _run(args: argparse.Namespace, settings: Settings) -> PurgeReport:
    async with command_database(settings) as sessionmaker:
        return await run_purge(
            sessionmaker,
            retention_days=settings.retention_days,
            batch_size=settings.retention_batch_size,
            trigger="cli",
            dry_run=args.dry_run,
        )


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        report = asyncio.run(_run(args, settings))
    except DatabaseNotReady as exc:
        print(f"beacon retention: {exc}", file=sys.stderr)
        return 1
    except (OSError, DBAPIError) as exc:
        print(f"beacon retention: database unavailable ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict()))
    return 0
