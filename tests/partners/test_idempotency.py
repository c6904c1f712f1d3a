"""Idempotency-Key: a retry gets the first answer, byte for byte; a reused key with another body
is refused; concurrent first calls leave one row and one answer."""

from __future__ import annotations

import asyncio
import json
import uuid
from time import perf_counter

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.db import create_sessionmaker
from app.core.metrics import Metrics
from app.partners import service
from app.partners.errors import IdempotencyKeyReused
from app.partners.models import TriageRequest
from app.partners.schemas import TriageItem
from tests.conftest import LiveServer, shared_triage
from tests.partners.conftest import Key, KeyFactory


async def _rows_with_key(db: AsyncSession, key: Key, idempotency_key: str) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(TriageRequest)
        .where(
            TriageRequest.api_key_id == key.id,
            TriageRequest.idempotency_key == idempotency_key,
        )
    )
    assert count is not None
    return count


def _post(
    client: httpx.AsyncClient, key: Key, body: bytes, idempotency_key: str
) -> asyncio.Future[httpx.Response]:
    return asyncio.ensure_future(
        client.post(
            "/v1/triage",
            content=body,
            headers={
                **key.headers,
                "Content-Type": "application/json",
                "Idempotency-Key": idempotency_key,
            },
        )
    )


async def test_replay_returns_the_identical_stored_response(
    client: httpx.AsyncClient, make_key: KeyFactory, db: AsyncSession
) -> None:
    key = await make_key()
    idem = uuid.uuid4().hex
    body = json.dumps({"items": [{"text": "I took 30 pills"}, {"text": "hi"}]}).encode()
    first = await _post(client, key, body, idem)
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    for _ in range(2):
        again = await _post(client, key, body, idem)
        assert again.status_code == 200
        assert again.content == first.content  # same bytes, elapsed_ms included
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["x-request-id"] == first.headers["x-request-id"]
    assert await _rows_with_key(db, key, idem) == 1


async def test_same_request_serialised_differently_is_still_a_replay(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    idem = uuid.uuid4().hex
    first = await _post(client, key, b'{"text": "hello", "context": ["a"]}', idem)
    again = await _post(client, key, b'{"context":["a"],\n"text":"hello"}', idem)
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_same_key_with_a_different_body_is_409(
    client: httpx.AsyncClient, make_key: KeyFactory, db: AsyncSession
) -> None:
    key = await make_key()
    idem = uuid.uuid4().hex
    first = await _post(client, key, b'{"text": "hello"}', idem)
    conflict = await _post(client, key, b'{"text": "hello!"}', idem)
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "idempotency_key_reused"
    # The stored answer is untouched and still replays.
    again = await _post(client, key, b'{"text": "hello"}', idem)
    assert again.content == first.content
    assert await _rows_with_key(db, key, idem) == 1


async def test_idempotency_keys_are_scoped_to_the_api_key(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    idem = uuid.uuid4().hex
    one, two = await make_key(), await make_key()
    await _post(client, one, b'{"text": "hello"}', idem)
    other = await _post(client, two, b'{"text": "something else"}', idem)
    assert other.status_code == 200
    assert "idempotent-replayed" not in other.headers


async def test_a_refused_request_does_not_use_up_its_key(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    idem = uuid.uuid4().hex
    refused = await _post(client, key, b'{"text": ""}', idem)
    assert refused.status_code == 422
    fixed = await _post(client, key, b'{"text": "hello"}', idem)
    assert fixed.status_code == 200
    assert "idempotent-replayed" not in fixed.headers


async def test_without_the_header_every_call_is_new(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    ids = set()
    for _ in range(2):
        response = await client.post("/v1/triage", json={"text": "hello"}, headers=key.headers)
        assert "idempotent-replayed" not in response.headers
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 2


@pytest.mark.parametrize("same_body", [True, False], ids=["same-body", "other-body"])
async def test_racing_first_calls_meet_at_the_unique_constraint(
    engine: AsyncEngine, make_committed_key: KeyFactory, same_body: bool
) -> None:
    """B starts while A's row is inserted but not committed: B's insert waits on the unique
    index, fails once A commits, and B answers from A's row (or refuses a different body)."""
    key = await make_committed_key()
    sessionmaker = create_sessionmaker(engine)
    idem = uuid.uuid4().hex
    metrics = Metrics()
    body_a = TriageItem(text="I have the pills here")
    body_b = body_a if same_body else TriageItem(text="I have the pills right here")

    async with sessionmaker() as db:
        principal = await service.authenticate(db, key.token, scope="triage")

    async def call(payload: TriageItem) -> service.TriageOutcome:
        async with sessionmaker() as db, db.begin():
            return await service.triage(
                db,
                principal,
                payload,
                idempotency_key=idem,
                metrics=metrics,
                started=perf_counter(),
                engine=shared_triage(),
            )

    async with sessionmaker() as db_a, db_a.begin():
        outcome_a = await service.triage(
            db_a,
            principal,
            body_a,
            idempotency_key=idem,
            metrics=metrics,
            started=perf_counter(),
            engine=shared_triage(),
        )
        racer = asyncio.ensure_future(call(body_b))
        await asyncio.sleep(0.5)
        assert not racer.done(), "B should be waiting on A's uncommitted row"
    # A has committed.
    if same_body:
        outcome_b = await asyncio.wait_for(racer, 10)
        assert outcome_b.replayed
        assert outcome_b.request_id == outcome_a.request_id
        assert outcome_b.body == outcome_a.body
    else:
        with pytest.raises(IdempotencyKeyReused):
            await asyncio.wait_for(racer, 10)
    async with sessionmaker() as db:
        assert await _rows_with_key(db, key, idem) == 1


@pytest.mark.timeout(120)
async def test_concurrent_retries_on_a_live_server_get_one_answer(
    live_server: LiveServer, make_committed_key: KeyFactory, engine: AsyncEngine
) -> None:
    key = await make_committed_key()
    idem = uuid.uuid4().hex
    body = json.dumps({"items": [{"text": f"message {i}"} for i in range(20)]}).encode()
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as client:
        responses = await asyncio.gather(*(_post(client, key, body, idem) for _ in range(8)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["x-request-id"] for r in responses}) == 1
    assert sum(1 for r in responses if "idempotent-replayed" not in r.headers) == 1
    async with create_sessionmaker(engine)() as db:
        assert await _rows_with_key(db, key, idem) == 1
