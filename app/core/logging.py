"""Structured logging. Log lines carry ids and codes only: never message text, tokens or keys.

Beacon's own events go through structlog. Everything else the process prints - uvicorn's error
and access loggers, websockets (inside uvicorn), asyncpg, SQLAlchemy, asyncio, Python warnings,
an uncaught exception - goes through the stdlib root logger, whose one handler renders each
record as one JSON line too. What a library puts in a record is not ours to vet, and a client
can steer it (an invalid UTF-8 frame, a malformed header line, a URL's query string, a
statement's parameters), so a library record keeps only its format string (code, not data), its
numeric arguments, and the exception's type: never the interpolated message, never a traceback.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog

_FORBIDDEN_KEYS = frozenset({"text", "token", "resume_token", "key", "api_key", "secret", "body"})
# Library format strings are short; a longer one was most likely built from data.
_MAX_EVENT_CHARS = 200
# Library records that a client causes at will: not an error of this server.
_CLIENT_FAULTS = {
    ("uvicorn.error", "Invalid UTF-8 sequence received from client."): logging.WARNING,
}
_WARNING_CATEGORY = re.compile(r":\d+: (\w+): ")
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _drop_sensitive(
    _: object, __: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    # A last line of defence: a careless ``log.info(..., text=...)`` never reaches the sink.
    for key in _FORBIDDEN_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


def _exception_type(
    _: object, __: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """``log.exception(...)`` names the exception's type; its message and traceback may carry
    data (a statement's parameters, a frame's bytes), so they are not logged."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        if isinstance(exc_info, BaseException):
            exc_type: type[BaseException] | None = type(exc_info)
        elif isinstance(exc_info, tuple):
            exc_type = exc_info[0]
        else:
            exc_type = sys.exc_info()[0]
        if exc_type is not None:
            event_dict["exc_type"] = exc_type.__name__
    return event_dict


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")


def library_event(record: logging.LogRecord) -> dict[str, Any]:
    """What may be logged of a library's record (see the module docstring)."""
    level = _CLIENT_FAULTS.get((record.name, str(record.msg)), record.levelno)
    event: dict[str, Any] = {
        "event": record.msg[:_MAX_EVENT_CHARS]
        if isinstance(record.msg, str)
        else type(record.msg).__name__,
        "logger": record.name,
        "level": logging.getLevelName(level).lower(),
        "timestamp": _timestamp(record.created),
    }
    args = record.args if isinstance(record.args, tuple) else ()
    if record.name == "py.warnings":
        # "file:line: Category: message\n  source": the category says enough.
        found = _WARNING_CATEGORY.search(record.getMessage())
        event.update(event="python_warning", category=found.group(1) if found else None)
    elif record.name == "uvicorn.access" and len(args) == 5:
        # (client address, method, path?query, HTTP version, status): no address (personal
        # data), no query string (it may carry a token).
        _, method, path, _, status = args
        event.update(event="http_access", method=method, path=str(path).split("?", 1)[0])
        event["status"] = status
    else:
        numbers = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
        if numbers:
            event["args"] = numbers
    if record.exc_info and record.exc_info[0] is not None:
        event["exc_type"] = record.exc_info[0].__name__
    return event


class LibraryRecordFormatter(logging.Formatter):
    """Renders a stdlib record as one JSON line (or one console line) of :func:`library_event`."""

    def __init__(self, *, json: bool = True) -> None:
        super().__init__()
        self._json = json

    def format(self, record: logging.LogRecord) -> str:
        event = library_event(record)
        if self._json:
            return jsonlib.dumps(event, ensure_ascii=False, default=str)
        details = " ".join(f"{k}={v}" for k, v in event.items() if k not in {"event", "level"})
        return f"{event['level']:<8} {event['event']}  {details}"


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("beacon").critical("uncaught_exception", exc_info=(exc_type, exc, tb))


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LibraryRecordFormatter(json=json))
    logging.basicConfig(handlers=[handler], level=level.upper(), force=True)
    # uvicorn's own logging config (when uvicorn is started without log_config=None) gives its
    # loggers plain-text handlers: send their records through the root handler instead. An
    # access logger that uvicorn switched off (no handlers, no propagation) stays off.
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_sensitive,
            _exception_type,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
