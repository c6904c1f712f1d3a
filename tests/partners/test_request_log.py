"""The triage_requests log: every authenticated call with its outcome, and never the text."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.partners.models import TriageRequest
from app.triage import assess
from tests.partners.conftest import KeyFactory

# Nonsense words no engine or lexicon will ever put into a signal, around a crisis phrase.
TEXT = "vorpalquist I want to end it all tonight with the zembrulent pills"
CONTEXT = ["flimmerjack said goodbye to everyone", "quandrosh"]
MARKERS = ["vorpalquist", "zembrulent", "flimmerjack", "quandrosh", "end it all"]


def _row_as_text(row: TriageRequest) -> str:
    values: dict[str, Any] = {c.key: getattr(row, c.key) for c in TriageRequest.__mapper__.columns}
    return json.dumps(values, default=str, ensure_ascii=False)


async def test_rows_hold_outcomes_and_no_message_text(
    client: httpx.AsyncClient, make_key: KeyFactory, db: AsyncSession
) -> None:
    key = await make_key()
    single = await client.post(
        "/v1/triage",
        json={"text": TEXT, "context": CONTEXT},
        headers={**key.headers, "Idempotency-Key": "log-test-1"},
    )
    batch = await client.post(
        "/v1/triage",
        json={"items": [{"text": TEXT}, {"text": CONTEXT[0], "context": [CONTEXT[1]]}]},
        headers=key.headers,
    )
    refused = await client.post(
        "/v1/triage", json={"text": TEXT, CONTEXT[1]: CONTEXT[0]}, headers=key.headers
    )
    assert [single.status_code, batch.status_code, refused.status_code] == [200, 200, 422]

    rows = list(
        (
            await db.execute(
                select(TriageRequest)
                .where(TriageRequest.api_key_id == key.id)
                .order_by(TriageRequest.id)
            )
        ).scalars()
    )
    assert [r.status_code for r in rows] == [200, 200, 422]
    assert [str(r.id) for r in rows] == [
        single.headers["x-request-id"],
        batch.headers["x-request-id"],
        refused.headers["x-request-id"],
    ]

    first, second, third = rows
    expected = assess(TEXT, CONTEXT)
    assert first.idempotency_key == "log-test-1"
    assert first.item_count == 1
    assert first.levels == [expected.level_value]
    assert first.model_version == expected.model_version
    assert first.response_body == single.json()
    assert first.duration_ms > 0
    assert second.item_count == 2
    assert second.levels == [r["level_value"] for r in batch.json()["items"]]
    assert second.response_body == batch.json()
    assert second.idempotency_key is None
    assert third.response_body == {"error": "validation_error"}  # details can quote JSON keys
    assert third.item_count == 0

    for row in rows:
        dumped = _row_as_text(row)
        for marker in MARKERS:
            assert marker not in dumped
        # The body fingerprint is keyed with the partner's secret, so it cannot be matched
        # against hashes of guessed phrases.
        for guess in (TEXT, json.dumps({"text": TEXT, "context": CONTEXT})):
            assert hashlib.sha256(guess.encode()).hexdigest() not in dumped
        # Stored responses hold outcomes only.
        assert "text" not in json.dumps(row.response_body)
