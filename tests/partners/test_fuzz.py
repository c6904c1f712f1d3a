"""Fuzzing POST /v1/triage on a real server: schemathesis from the published OpenAPI (every
built-in check: no 5xx, documented statuses, bodies and headers conform, valid data accepted,
invalid data rejected), and hypothesis with arbitrary bytes and JSON.

Both drive blocking HTTP clients, so they run in a worker thread while the server keeps the
test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer, ServerProcess
from tests.fuzz_support import FuzzRun, run_schemathesis
from tests.partners.conftest import KeyFactory

UNLIMITED = 10**9  # the fuzzers must not be throttled: 429 is a different test's subject


def _schemathesis_run(base_url: str, token: str) -> FuzzRun:
    config = {
        "seed": 20261125,
        "headers": {"Authorization": f"Bearer {token}"},
        "cache": {"enabled": False},
        "generation": {"max-examples": 250, "deterministic": True, "database": "none"},
        "checks": {"enabled": True},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
    return run_schemathesis(
        base_url, config, lambda schema: schema.include(path="/v1/triage", method="POST")
    )


@pytest.mark.timeout(240)
async def test_schemathesis_finds_no_server_error_or_schema_mismatch(
    server_process_factory: Callable[..., ServerProcess], make_committed_key: KeyFactory
) -> None:
    key = await make_committed_key(rate_limit_per_min=UNLIMITED)
    # `beacon serve` in its own process: the generator and the server each get a core.
    server = server_process_factory()
    await asyncio.to_thread(server.start)
    started = time.monotonic()
    run = await asyncio.to_thread(_schemathesis_run, server.base_url, key.token)
    print(f"schemathesis: {run.cases} cases in {time.monotonic() - started:.1f} s")
    assert run.scenarios >= 3  # examples, coverage and fuzzing each ran
    assert run.cases >= 250
    assert run.problems == [], "\n\n".join(run.problems)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
# Near-misses of the real shapes find more edges than uniformly random JSON.
near_misses = st.fixed_dictionaries(
    {},
    optional={
        "text": json_values,
        "context": st.lists(json_values, max_size=4) | json_values,
        "items": st.lists(
            st.dictionaries(st.sampled_from(["text", "context", "x"]), json_values), max_size=4
        )
        | json_values,
        "extra": json_values,
    },
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_misses.map(lambda v: json.dumps(v).encode())
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", ""]
)
# Header values the HTTP layer itself accepts (no edge spaces, no controls); what the HTTP
# server rejects before the app sees it is not this test's subject.
idempotency_keys = st.none() | st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300
).filter(lambda key: key == key.strip())


def _hypothesis_run(base_url: str, token: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:

        @settings(
            max_examples=300,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(body=bodies, content_type=content_types, idem=idempotency_keys)
        def check(body: bytes, content_type: str, idem: str | None) -> None:
            headers: dict[str, Any] = {"Authorization": f"Bearer {token}"}
            if content_type:
                headers["Content-Type"] = content_type
            if idem is not None:
                headers["Idempotency-Key"] = idem
            response = client.post("/v1/triage", content=body, headers=headers)
            assert response.status_code < 500, response.text
            assert response.headers["content-type"] == "application/json", response.text
            payload = response.json()
            if response.status_code == 200:
                assert "level" in payload or "items" in payload
            else:
                assert set(payload) == {"error", "detail"}
                assert payload["error"] in {
                    "invalid_json",
                    "validation_error",
                    "unsupported_media_type",
                    "invalid_idempotency_key",
                    "idempotency_key_reused",
                }

        check()


@pytest.mark.timeout(240)
async def test_arbitrary_requests_never_cause_a_server_error(
    live_server: LiveServer, make_committed_key: KeyFactory
) -> None:
    key = await make_committed_key(rate_limit_per_min=UNLIMITED)
    await asyncio.to_thread(_hypothesis_run, live_server.base_url, key.token)
