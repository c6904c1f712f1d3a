"""Who may call POST /v1/triage: keys are checked before anything else about the request."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import digest_secret
from app.partners import service
from app.partners.models import ApiKey
from tests.partners.conftest import KeyFactory

BODY = {"text": "hello"}


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == code


async def test_valid_key_is_accepted(client: httpx.AsyncClient, make_key: KeyFactory) -> None:
    key = await make_key()
    response = await client.post("/v1/triage", json=BODY, headers=key.headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Token bk_0_0"],
    ids=["absent", "empty", "scheme-only", "basic", "other-scheme"],
)
async def test_missing_key_is_401_with_bearer_challenge(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post("/v1/triage", json=BODY, headers=headers)
    _assert_error(response, 401, "missing_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    [
        "nope",
        "bk_short_secret",
        "bk_" + "g" * 16 + "_" + "0" * 64,  # not hex
        "bk_" + "0" * 16 + "_" + "0" * 64 + "0",  # one character too long
        "BK_" + "0" * 16 + "_" + "0" * 64,
    ],
)
async def test_malformed_key_is_401(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post(
        "/v1/triage", json=BODY, headers={"Authorization": f"Bearer {token}"}
    )
    _assert_error(response, 401, "invalid_api_key")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_unknown_prefix_and_wrong_secret_look_the_same(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    prefix, secret = key.token.split("_")[1:]
    wrong_secret = f"bk_{prefix}_{'0' * 64 if secret != '0' * 64 else '1' * 64}"
    unknown_prefix = f"bk_{'f' * 16 if prefix != 'f' * 16 else 'e' * 16}_{secret}"
    bodies = []
    for token in (wrong_secret, unknown_prefix):
        response = await client.post(
            "/v1/triage", json=BODY, headers={"Authorization": f"Bearer {token}"}
        )
        _assert_error(response, 401, "invalid_api_key")
        bodies.append(response.content)
    assert bodies[0] == bodies[1]


async def test_revoked_key_is_401_key_revoked(
    client: httpx.AsyncClient, make_key: KeyFactory, db: AsyncSession
) -> None:
    key = await make_key()
    assert (await client.post("/v1/triage", json=BODY, headers=key.headers)).status_code == 200
    await service.revoke_key(db, key.id)
    await db.flush()
    response = await client.post("/v1/triage", json=BODY, headers=key.headers)
    _assert_error(response, 401, "key_revoked")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_revoking_twice_keeps_the_first_time(make_key: KeyFactory, db: AsyncSession) -> None:
    key = await make_key()
    first = (await service.revoke_key(db, key.id)).revoked_at
    second = (await service.revoke_key(db, key.id)).revoked_at
    assert first is not None
    assert second == first


async def test_key_without_triage_scope_is_403(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key(scopes=())
    response = await client.post("/v1/triage", json=BODY, headers=key.headers)
    _assert_error(response, 403, "insufficient_scope")
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="triage"' in challenge


async def test_authentication_comes_before_body_parsing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/triage", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    _assert_error(response, 401, "missing_api_key")


async def test_keys_are_stored_as_digests_only(make_key: KeyFactory, db: AsyncSession) -> None:
    key = await make_key()
    row = await db.get(ApiKey, key.id)
    assert row is not None
    secret = key.token.rsplit("_", 1)[1]
    assert secret not in row.key_hash
    assert row.key_hash == digest_secret(secret)
    assert key.token == f"bk_{row.prefix}_{secret}"
    assert row.created_at <= datetime.now(UTC)
