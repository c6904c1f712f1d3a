"""`beacon resource ...`: the resource library from the command line (add, list, remove).

Every command prints one JSON object on stdout; errors go to stderr as ``{"error": code}`` with
a non-zero exit code. Input is checked by the same schema as ``POST /v1/admin/resources``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from app.audit.service import Actor
from app.core.commands import DatabaseNotReady, command_database
from app.core.config import Settings, get_settings
from app.core.db import transaction
from app.core.errors import BeaconError
from app.resources import schemas, service

CLI_ACTOR = Actor("admin", "cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beacon resource")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add a reviewed resource")
    add.add_argument("--title", required=True)
    add.add_argument("--locale", required=True, help="e.g. en, es")
    add.add_argument("--text", required=True, help="the short text the card shows")
    add.add_argument("--url", help="https:// address")
    add.add_argument("--phone", help="number for tap-to-call")
    add.add_argument("--topics", default="", help="comma-separated, e.g. sleep,anxiety")
    add.add_argument(
        "--levels",
        default=",".join(schemas.LEVEL_NAMES),
        help="urgency levels it suits, comma-separated (default: all)",
    )
    listing = sub.add_parser("list", help="the library (optionally one locale)")
    listing.add_argument("--locale")
    remove = sub.add_parser("remove", help="remove a resource (sent cards stay in transcripts)")
    remove.add_argument("id", type=uuid.UUID)
    return parser


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


async def _run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    async with command_database(settings) as sessionmaker, transaction(sessionmaker) as db:
        if args.action == "add":
            data = schemas.ResourceIn.model_validate(
                {
                    "title": args.title,
                    "locale": args.locale,
                    "text": args.text,
                    "url": args.url,
                    "phone": args.phone,
                    "topics": _split(args.topics),
                    "levels": _split(args.levels),
                }
            )
            row = await service.add(db, data, actor=CLI_ACTOR)
            return service.out(row).model_dump(mode="json")
        if args.action == "remove":
            await service.remove(db, args.id, actor=CLI_ACTOR)
            return {"id": str(args.id), "removed": True}
        locale = schemas.primary_locale(args.locale) if args.locale else None
        rows = await service.search(db, locale=locale, limit=10_000)
        return {"resources": [service.out(r).model_dump(mode="json") for r in rows]}


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def main(argv: Sequence[str]) -> int:
    settings = get_settings()
    args = _parser().parse_args(list(argv))
    return run_printing(lambda: asyncio.run(_run(args, settings)))


def run_printing(run: Callable[[], dict[str, Any]]) -> int:
    """Run a command; print its JSON, or its error code on stderr (exit 1)."""
    try:
        result = run()
    except BeaconError as exc:
        print(json.dumps({"error": exc.code, "detail": exc.detail}), file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(json.dumps({"error": "validation_error", "detail": _errors(exc)}), file=sys.stderr)
        return 1
    except ValueError as exc:
        print(json.dumps({"error": "validation_error", "detail": str(exc)}), file=sys.stderr)
        return 1
    except DatabaseNotReady as exc:
        print(json.dumps({"error": "database_not_ready", "detail": str(exc)}), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
