"""`beacon canned ...`: canned replies from the command line (add, list, remove).

One JSON object on stdout; errors on stderr as ``{"error": code}`` with exit code 1. Input is
checked by the same schema and placeholder rules as ``POST /v1/admin/canned-replies``.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from app.core.commands import command_database
from app.core.config import Settings, get_settings
from app.core.db import transaction
from app.resources import canned, schemas
from app.resources.cli import CLI_ACTOR, run_printing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beacon canned")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser(
        "add", help="add a snippet; placeholders: " + ", ".join(canned.PLACEHOLDERS)
    )
    add.add_argument("--locale", required=True)
    add.add_argument("--title", required=True)
    add.add_argument("--text", required=True)
    listing = sub.add_parser("list", help="the snippets (optionally one locale)")
    listing.add_argument("--locale")
    remove = sub.add_parser("remove", help="remove a snippet")
    remove.add_argument("id", type=uuid.UUID)
    return parser


async def _run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    async with command_database(settings) as sessionmaker, transaction(sessionmaker) as db:
        if args.action == "add":
            data = canned.CannedIn.model_validate(
                {"locale": args.locale, "title": args.title, "text": args.text}
            )
            row = await canned.add(db, data, actor=CLI_ACTOR)
            return canned.out(row).model_dump(mode="json")
        if args.action == "remove":
            await canned.remove(db, args.id, actor=CLI_ACTOR)
            return {"id": str(args.id), "removed": True}
        locale = schemas.primary_locale(args.locale) if args.locale else None
        rows = await canned.listing(db, locale=locale)
        return {"replies": [canned.out(r).model_dump(mode="json") for r in rows]}


def main(argv: Sequence[str]) -> int:
    settings = get_settings()
    args = _parser().parse_args(list(argv))
    return run_printing(lambda: asyncio.run(_run(args, settings)))
