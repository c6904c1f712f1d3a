"""Structured logging. Log lines carry ids and codes only: never message text, tokens or keys."""

from __future__ import annotations

import logging
import sys

import structlog

_FORBIDDEN_KEYS = frozenset({"text", "token", "resume_token", "key", "api_key", "secret", "body"})


def _drop_sensitive(
    _: object, __: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    # A last line of defence: a careless ``log.info(..., text=...)`` never reaches the sink.
    for key in _FORBIDDEN_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper(), force=True)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_sensitive,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
