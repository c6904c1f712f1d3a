"""Running schemathesis (4.x engine) against a live server and collecting what its checks found.

Blocking: call it in a worker thread (``asyncio.to_thread``) so the server can keep the test's
event loop when it runs in-process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from schemathesis.engine import Status, events
from schemathesis.engine import from_schema as engine_from_schema
from schemathesis.schemas import BaseSchema


@dataclass
class FuzzRun:
    scenarios: int = 0
    cases: int = 0
    # One entry per failed check (title + a curl-like reproduction), error answer without the
    # error shape, or engine error.
    problems: list[str] = field(default_factory=list)
    # Scenario label ("METHOD /path") -> the statuses it got: what the run reached.
    statuses: dict[str, set[int]] = field(default_factory=dict)


def _is_error_body(content: bytes) -> bool:
    """Every refusal carries ``{"error": "<stable_code>", "detail": ...}`` (app/core/errors.py)."""
    try:
        body = json.loads(content)
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and set(body) == {"error", "detail"}
        and isinstance(body["error"], str)
        and body["error"].replace("_", "").isalpha()
        and body["error"].islower()
    )


def run_schemathesis(
    base_url: str,
    config: dict[str, Any],
    select: Callable[[BaseSchema], BaseSchema] = lambda schema: schema,
) -> FuzzRun:
    """Load ``/openapi.json`` from ``base_url`` with ``config`` (schemathesis config as a dict),
    narrow it with ``select`` and run every enabled phase."""
    loaded = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", config=schemathesis.Config.from_dict(config)
    )
    run = FuzzRun()
    for event in engine_from_schema(select(loaded)).execute():
        if isinstance(event, events.ScenarioFinished):
            run.scenarios += 1
            run.cases += len(event.recorder.cases)
            seen = run.statuses.setdefault(event.recorder.label, set())
            for interaction in event.recorder.interactions.values():
                response = interaction.response
                if response is None:
                    continue
                seen.add(response.status_code)
                if response.status_code >= 400 and not _is_error_body(response.content):
                    run.problems.append(
                        f"error body: {interaction.request.method} {interaction.request.uri} -> "
                        f"{response.status_code} {response.content[:200]!r}"
                    )
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        run.problems.append(
                            f"{check.name}: {failure.title}\n{check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            run.problems.append(f"{type(event).__name__}: {event!r}")
        elif isinstance(event, events.EngineFinished):
            run.problems.extend(f"after-run: {f.title}" for f in event.failures)
    return run
