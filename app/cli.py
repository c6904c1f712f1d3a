"""`beacon` command line. Each domain owns its sub-commands; this module only dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-commands implemented by a domain package: name -> module with ``main(argv) -> int``.
_DOMAIN_COMMANDS = {
    "triage": "app.triage.cli",
    "partner": "app.partners.cli",
    "volunteer": "app.routing.cli",
    "resource": "app.resources.cli",
    "canned": "app.resources.canned_cli",
    "retention": "app.retention.cli",
    "simulate": "app.simulate.cli",
}

_USAGE = """usage: beacon <command> [...]

commands:
  serve [--host H] [--port P]      run the service (embedded SQLite unless BEACON_DATABASE_URL)
  db upgrade                       migrate the configured database to head
  triage "text" | batch | eval     triage text, a CSV, or measure quality on a labelled CSV
  partner add NAME | revoke ID     manage partner API keys
  volunteer add NAME [...]         create volunteer / supervisor accounts
  resource add | list | remove     the resource library volunteers send as cards
  canned add | list | remove       canned replies (per-locale snippets with placeholders)
  retention purge [--dry-run]      purge transcripts older than BEACON_RETENTION_DAYS now
  simulate [run] | staff [...]     simulate a shift through the routing policy (docs/simulation.md)
"""


def _serve(argv: Sequence[str]) -> int:
    import uvicorn

    from app.core.config import get_settings
    from app.core.logging import configure_logging
    from app.core.server import http_protocol

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="beacon serve")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    args = parser.parse_args(argv)
    # JSON lines from the first one: uvicorn's own lines go through our handler (log_config=None).
    configure_logging(settings.log_level, json=settings.log_json)
    uvicorn.run(
        "app.main:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        http=http_protocol(settings.http_header_timeout_s),
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        ws_max_size=settings.max_frame_bytes,
        # Chat frames are a few hundred bytes: deflate costs more CPU than it saves bandwidth.
        ws_per_message_deflate=False,
        # The app's own error path answers bad frames; uvicorn's ping keeps NATs open.
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        # SIGTERM: uvicorn stops listening, closes every socket with 1012 and waits for the
        # handlers (a message already received still commits); this bounds that wait before
        # the lifespan stops the background work (docs/operations.md, "Stopping an instance").
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    return 0


def _db(argv: Sequence[str]) -> int:
    from app.core.config import get_settings
    from app.core.migrate import upgrade_to_head

    parser = argparse.ArgumentParser(prog="beacon db")
    parser.add_argument("action", choices=["upgrade"])
    parser.parse_args(argv)
    upgrade_to_head(get_settings().database_url)
    print("database at head", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "serve":
        return _serve(rest)
    if command == "db":
        return _db(rest)
    if command in _DOMAIN_COMMANDS:
        module = importlib.import_module(_DOMAIN_COMMANDS[command])
        result: int = module.main(rest)
        return result
    print(f"beacon: unknown command {command!r}\n\n{_USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
