"""`beacon volunteer ...`: create accounts, issue and revoke their tokens.

Every command prints one JSON object on stdout (tokens appear only in ``add`` and ``token``
output, once); errors go to stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from app.core.commands import DatabaseNotReady, command_database
from app.core.config import Settings, get_settings
from app.core.db import transaction
from app.core.errors import BeaconError
from app.routing import accounts
from app.routing.models import ROLES, Volunteer


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beacon volunteer")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create an account and print its token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="volunteer")
    add.add_argument("--languages", default="en", help="comma-separated, e.g. en,es")
    add.add_argument("--capacity", type=int, default=settings.volunteer_default_capacity)
    revoke = sub.add_parser("revoke", help="revoke an account's token at once")
    revoke.add_argument("id", type=uuid.UUID)
    token = sub.add_parser("token", help="issue a fresh token (the old one stops working)")
    token.add_argument("id", type=uuid.UUID)
    sub.add_parser("list", help="accounts, without tokens")
    return parser


async def _run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    async with command_database(settings) as sessionmaker, transaction(sessionmaker) as db:
        if args.action == "add":
            issued = await accounts.create_volunteer(
                db,
                name=args.name,
                role=args.role,
                languages=[p for p in args.languages.split(",") if p.strip()],
                capacity=args.capacity,
                token_ttl_s=settings.volunteer_token_ttl_s,
            )
            return {
                "id": str(issued.id),
                "name": issued.name,
                "role": issued.role,
                "languages": issued.languages,
                "capacity": issued.capacity,
                "token": issued.token,
                "token_expires_at": issued.token_expires_at,
            }
        if args.action == "revoke":
            await accounts.revoke_volunteer(db, args.id)
            return {"id": str(args.id), "revoked": True}
        if args.action == "token":
            token = await accounts.rotate_token(
                db, args.id, token_ttl_s=settings.volunteer_token_ttl_s
            )
            return {"id": str(args.id), "token": token}
        rows = (await db.scalars(select(Volunteer).order_by(Volunteer.created_at))).all()
        return {
            "volunteers": [
                {
                    "id": str(v.id),
                    "name": v.name,
                    "role": v.role,
                    "languages": v.languages,
                    "capacity": v.capacity,
                    "revoked": v.revoked_at is not None,
                    "token_expires_at": v.token_expires_at.isoformat(),
                }
                for v in rows
            ]
        }


def main(argv: Sequence[str]) -> int:
    settings = get_settings()
    args = _parser(settings).parse_args(list(argv))
    try:
        result = asyncio.run(_run(args, settings))
    except BeaconError as exc:
        print(json.dumps({"error": exc.code, "detail": exc.detail}), file=sys.stderr)
        return 1
    except DatabaseNotReady as exc:
        print(json.dumps({"error": "database_not_ready", "detail": str(exc)}), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
