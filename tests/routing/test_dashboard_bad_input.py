"""Dashboard REST under bad input (regressions from tests/test_openapi_fuzz.py): the answer is a
documented 4xx with the error shape, never a 500."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.routing.helpers import add_session, add_volunteer


async def test_transcript_after_seq_past_the_column_range_is_a_validation_error(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    # messages.seq is 32-bit: this used to reach Postgres and come back as a 500.
    issued, _ = await add_volunteer(db, role="supervisor")
    session_id = await add_session(db)
    headers = {"Authorization": f"Bearer {issued.token}"}
    url = f"/v1/dashboard/sessions/{session_id}"
    response = await client.get(url, params={"after_seq": 2**31}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    largest = await client.get(url, params={"after_seq": 2**31 - 1}, headers=headers)
    assert largest.status_code == 200, largest.text
    assert largest.json()["transcript"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/dashboard/me/presence"),
        ("POST", "/v1/dashboard/sessions/{session_id}/close"),
        ("POST", "/v1/dashboard/sessions/{session_id}/transfer"),
    ],
)
async def test_unparseable_bodies_get_a_declared_400(
    client: httpx.AsyncClient, db: AsyncSession, method: str, path: str
) -> None:
    issued, _ = await add_volunteer(db, role="supervisor")
    url = path.format(session_id=await add_session(db))
    response = await client.request(
        method,
        url,
        content=b'{"status": ',
        headers={"Authorization": f"Bearer {issued.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_json", "detail": "request body is not valid JSON"}
    spec = (await client.get("/openapi.json")).json()
    declared = spec["paths"][path][method.lower()]["responses"]
    assert declared["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
