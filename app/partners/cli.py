"""`beacon partner add NAME | revoke ID | list`: partner API keys, on the configured database.

Output is JSON on stdout (one object per line) so scripts can read it; anything for the human
goes to stderr. ``add`` is the only time a key is ever shown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.commands import DatabaseNotReady, command_database
from app.core.config import Settings, get_settings
from app.core.db import transaction
from app.core.errors import BeaconError
from app.core.logging import configure_logging
from app.partners import service
from app.partners.schemas import ApiKeyInfo, ApiKeyIssued

_ACTOR = "cli"


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _scopes(value: str) -> list[str]:
    scopes = [s.strip() for s in value.split(",") if s.strip()]
    unknown = set(scopes) - service.KNOWN_SCOPES
    if unknown:
        known = ", ".join(sorted(service.KNOWN_SCOPES))
        raise argparse.ArgumentTypeError(f"unknown scope(s) {sorted(unknown)}; known: {known}")
    return scopes


def _key_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a key id (UUID): {value!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beacon partner", description="Partner API keys.")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a key and print it (shown only this once)")
    add.add_argument("name")
    add.add_argument(
        "--scopes",
        type=_scopes,
        default=[service.TRIAGE_SCOPE],
        help="comma-separated scopes (default: triage; '' for none)",
    )
    add.add_argument(
        "--rate-limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="requests per minute for this key (default: BEACON_PARTNER_RATE_LIMIT_PER_MIN)",
    )
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("id", type=_key_id)
    actions.add_parser("list", help="list keys (never the secrets)")
    return parser


async def _apply(args: argparse.Namespace, db: AsyncSession) -> list[ApiKeyInfo | ApiKeyIssued]:
    if args.action == "add":
        row, key = await service.create_key(
            db,
            name=args.name,
            scopes=args.scopes,
            rate_limit_per_min=args.rate_limit,
            actor_id=_ACTOR,
        )
        issued = ApiKeyIssued(
            id=row.id,
            name=row.name,
            key=key,
            prefix=row.prefix,
            scopes=row.scopes,
            rate_limit_per_min=row.rate_limit_per_min,
            created_at=row.created_at,
        )
        return [issued]
    if args.action == "revoke":
        row = await service.revoke_key(db, args.id, actor_id=_ACTOR)
        return [ApiKeyInfo.model_validate(row, from_attributes=True)]
    rows = await service.list_keys(db)
    return [ApiKeyInfo.model_validate(r, from_attributes=True) for r in rows]


async def _run(args: argparse.Namespace, settings: Settings) -> list[ApiKeyInfo | ApiKeyIssued]:
    async with command_database(settings) as sessionmaker, transaction(sessionmaker) as db:
        return await _apply(args, db)


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    # Logs go to stderr, so stdout stays pure JSON.
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        output = asyncio.run(_run(args, settings))
    except DatabaseNotReady as exc:
        print(f"beacon partner: {exc}", file=sys.stderr)
        return 1
    except BeaconError as exc:
        print(f"beacon partner: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    except (OSError, DBAPIError) as exc:
        print(f"beacon partner: database unavailable ({type(exc).__name__})", file=sys.stderr)
        return 1
    # Printed only after the commit: a key that was shown is a key that exists.
    for item in output:
        print(json.dumps(item.model_dump(mode="json")), flush=True)
    if args.action == "add":
        print("Store this key now: it cannot be shown again.", file=sys.stderr)
    return 0
