"""POST /v1/triage: results, batches, strict validation with stable codes, rate limits, metrics,
logs and the OpenAPI description."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from app.partners.schemas import TriageBatchOut, TriageResultOut
from app.triage import assess
from tests.partners.conftest import ClientFactory, KeyFactory

RESULT_FIELDS = {"level", "level_value", "score", "signals", "model_version", "elapsed_ms"}


def _contract(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a result fixed by the engine (elapsed time varies)."""
    return {k: v for k, v in result.items() if k != "elapsed_ms"}


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == code
    return body


async def test_single_text_gets_a_triage_result(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    text, context = "I have them right here", ["I want to swallow all my pills"]
    request = {"text": text, "context": context}
    response = await client.post("/v1/triage", json=request, headers=key.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == RESULT_FIELDS
    TriageResultOut.model_validate(body)
    assert _contract(body) == assess(text, context).as_dict()
    assert body["elapsed_ms"] >= 0
    assert response.headers["x-request-id"].isdigit()
    assert "idempotent-replayed" not in response.headers


async def test_context_is_optional(client: httpx.AsyncClient, make_key: KeyFactory) -> None:
    key = await make_key()
    response = await client.post("/v1/triage", json={"text": "hi"}, headers=key.headers)
    assert response.status_code == 200
    assert _contract(response.json()) == assess("hi").as_dict()


async def test_batch_results_come_back_in_request_order(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    items: list[dict[str, Any]] = [
        {"text": "good morning, how do I book a session?"},
        {"text": "I want to kill myself tonight, I have the pills here"},
        {"text": "I feel so sad and lonely"},
        {"text": "I have them right here", "context": ["I want to swallow all my pills"]},
        {"text": "I have them right here"},
        {"text": "thinking about suicide a lot lately"},
        {"text": "this exam is killing me 😂"},
    ]
    expected = [assess(i["text"], i.get("context", [])).as_dict() for i in items]
    # The order check can only fail if the results differ from each other.
    assert len({json.dumps(e, sort_keys=True) for e in expected}) > 1
    for ordering in (items, items[::-1]):
        response = await client.post("/v1/triage", json={"items": ordering}, headers=key.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        TriageBatchOut.model_validate(body)
        want = expected if ordering is items else expected[::-1]
        assert [_contract(r) for r in body["items"]] == want
        assert body["model_version"] == want[0]["model_version"]
        assert body["elapsed_ms"] >= 0


async def test_batch_of_exactly_the_maximum_is_accepted(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    items = [{"text": f"message number {i}"} for i in range(100)]
    response = await client.post("/v1/triage", json={"items": items}, headers=key.headers)
    assert response.status_code == 200
    assert len(response.json()["items"]) == 100


async def test_text_of_exactly_4096_utf8_bytes_is_accepted(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    text = "é" * 2048  # 4096 bytes
    response = await client.post(
        "/v1/triage", json={"text": text, "context": [text] * 50}, headers=key.headers
    )
    assert response.status_code == 200, response.text


TOO_LONG_ASCII = "a" * 4097
TOO_LONG_BYTES = "é" * 2049  # 2049 characters, 4098 bytes: the limit is in bytes

INVALID_BODIES: list[tuple[str, Any]] = [
    ("empty-text", {"text": ""}),
    ("blank-text", {"text": "  \n\t\u3000"}),
    ("text-over-4KiB", {"text": TOO_LONG_ASCII}),
    ("text-over-4KiB-in-bytes", {"text": TOO_LONG_BYTES}),
    ("context-item-over-4KiB", {"text": "hi", "context": [TOO_LONG_BYTES]}),
    ("blank-context-item", {"text": "hi", "context": [" "]}),
    ("context-over-50", {"text": "hi", "context": ["earlier"] * 51}),
    ("batch-over-100", {"items": [{"text": "hi"}] * 101}),
    ("empty-batch", {"items": []}),
    ("batch-item-invalid", {"items": [{"text": "fine"}, {"text": ""}]}),
    ("text-number", {"text": 123}),
    ("text-null", {"text": None}),
    ("text-list", {"text": ["hi"]}),
    ("text-bool", {"text": True}),
    ("text-nan", {"text": float("nan")}),  # a NaN literal parses, but is never a string
    ("context-string", {"text": "hi", "context": "earlier"}),
    ("context-number-item", {"text": "hi", "context": [1]}),
    ("items-object", {"items": {"text": "hi"}}),
    ("items-strings", {"items": ["hi"]}),
    ("extra-field", {"text": "hi", "lang": "en"}),
    ("extra-field-in-item", {"items": [{"text": "hi", "priority": 1}]}),
    ("text-and-items", {"text": "hi", "items": [{"text": "hi"}]}),
    ("no-text", {"context": ["hi"]}),
    ("empty-object", {}),
    ("array", [{"text": "hi"}]),
    ("string", "hi"),
    ("number", 42),
    ("null", None),
]


@pytest.mark.parametrize(("label", "body"), INVALID_BODIES, ids=[i[0] for i in INVALID_BODIES])
async def test_invalid_bodies_are_422_validation_error(
    client: httpx.AsyncClient, make_key: KeyFactory, label: str, body: Any
) -> None:
    key = await make_key()
    response = await client.post(
        "/v1/triage",
        content=json.dumps(body).encode(),
        headers={**key.headers, "Content-Type": "application/json"},
    )
    error = _assert_error(response, 422, "validation_error")
    assert isinstance(error["detail"], list)
    assert all(set(e) == {"loc", "msg", "type"} for e in error["detail"])
    # Rejected input is never echoed back.
    assert "aaaa" not in response.text
    assert "éé" not in response.text


INVALID_JSON: list[tuple[str, bytes]] = [
    ("truncated", b'{"text": "hi"'),
    ("empty", b""),
    ("not-utf8", b'{"text": "\xff\xfe"}'),
    ("lone-surrogate", b'{"text": "\\ud800"}'),
    ("two-documents", b'{"text": "a"}{"text": "b"}'),
    ("trailing-garbage", b'{"text": "a"} x'),
    ("single-quotes", b"{'text': 'a'}"),
    ("deep-nesting", b"[" * 10_000 + b"]" * 10_000),
]


@pytest.mark.parametrize(("label", "raw"), INVALID_JSON, ids=[i[0] for i in INVALID_JSON])
async def test_invalid_json_is_400_invalid_json(
    client: httpx.AsyncClient, make_key: KeyFactory, label: str, raw: bytes
) -> None:
    key = await make_key()
    response = await client.post(
        "/v1/triage", content=raw, headers={**key.headers, "Content-Type": "application/json"}
    )
    _assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_non_json_content_type_is_415(
    client: httpx.AsyncClient, make_key: KeyFactory, content_type: str | None
) -> None:
    key = await make_key()
    headers = dict(key.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post("/v1/triage", content=b'{"text": "hi"}', headers=headers)
    _assert_error(response, 415, "unsupported_media_type")


async def test_json_subtypes_and_charset_are_accepted(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    for content_type in ("application/json; charset=utf-8", "application/vnd.beacon+json"):
        response = await client.post(
            "/v1/triage",
            content=b'{"text": "hi"}',
            headers={**key.headers, "Content-Type": content_type},
        )
        assert response.status_code == 200, content_type


async def test_body_over_the_limit_is_413(
    client_factory: ClientFactory, make_key: KeyFactory
) -> None:
    client = await client_factory(triage_max_body_bytes=2048)
    key = await make_key()
    big = json.dumps({"items": [{"text": "x" * 100}] * 30}).encode()
    response = await client.post(
        "/v1/triage", content=big, headers={**key.headers, "Content-Type": "application/json"}
    )
    _assert_error(response, 413, "payload_too_large")

    async def chunks() -> Any:  # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b" " * 512

    response = await client.post(
        "/v1/triage", content=chunks(), headers={**key.headers, "Content-Type": "application/json"}
    )
    _assert_error(response, 413, "payload_too_large")


async def test_limits_follow_settings(client_factory: ClientFactory, make_key: KeyFactory) -> None:
    client = await client_factory(max_text_bytes=10, triage_batch_max=2, triage_context_max=1)
    key = await make_key()
    cases: list[tuple[Any, int]] = [
        ({"text": "0123456789"}, 200),
        ({"text": "0123456789a"}, 422),
        ({"items": [{"text": "a"}, {"text": "b"}]}, 200),
        ({"items": [{"text": "a"}, {"text": "b"}, {"text": "c"}]}, 422),
        ({"text": "a", "context": ["b"]}, 200),
        ({"text": "a", "context": ["b", "c"]}, 422),
    ]
    for body, status in cases:
        response = await client.post("/v1/triage", json=body, headers=key.headers)
        assert response.status_code == status, body


@pytest.mark.parametrize("value", ["", "x" * 256, "has space", "tab\tkey", "ключ"])
async def test_malformed_idempotency_key_is_422(
    client: httpx.AsyncClient, make_key: KeyFactory, value: str
) -> None:
    key = await make_key()
    response = await client.post(
        "/v1/triage",
        json={"text": "hi"},
        headers=[
            (b"Authorization", key.headers["Authorization"].encode()),
            (b"Idempotency-Key", value.encode()),
        ],
    )
    _assert_error(response, 422, "invalid_idempotency_key")


async def test_per_key_rate_limit_is_429_with_retry_after(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    limited = await make_key(rate_limit_per_min=2)
    other = await make_key()
    for _ in range(2):
        response = await client.post("/v1/triage", json={"text": "hi"}, headers=limited.headers)
        assert response.status_code == 200
    response = await client.post("/v1/triage", json={"text": "hi"}, headers=limited.headers)
    _assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 30  # one token of a 2/min bucket comes back within 30 s
    # Another key has its own bucket.
    response = await client.post("/v1/triage", json={"text": "hi"}, headers=other.headers)
    assert response.status_code == 200


async def test_default_rate_limit_comes_from_settings(
    client_factory: ClientFactory, make_key: KeyFactory
) -> None:
    client = await client_factory(partner_rate_limit_per_min=1)
    key = await make_key()
    first = await client.post("/v1/triage", json={"text": "hi"}, headers=key.headers)
    assert first.status_code == 200
    # Refused requests spend tokens too (the limit guards the server, whatever the body).
    second = await client.post("/v1/triage", json={"text": ""}, headers=key.headers)
    _assert_error(second, 429, "rate_limited")
    assert 1 <= int(second.headers["retry-after"]) <= 60


async def test_metrics_count_partner_calls_by_status_and_time_triage(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    await client.post(
        "/v1/triage", json={"items": [{"text": "a"}, {"text": "b"}]}, headers=key.headers
    )
    await client.post("/v1/triage", json={"text": ""}, headers=key.headers)
    await client.post("/v1/triage", json={"text": "a"})
    metrics = (await client.get("/metrics")).text
    assert 'beacon_partner_requests_total{status="200"} 1.0' in metrics
    assert 'beacon_partner_requests_total{status="422"} 1.0' in metrics
    assert 'beacon_partner_requests_total{status="401"} 1.0' in metrics
    assert 'beacon_triage_latency_ms_count{source="partner"} 2.0' in metrics
    level_lines = [
        line
        for line in metrics.splitlines()
        if line.startswith("beacon_triage_levels_total{") and 'source="partner"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in level_lines) == 2.0


async def test_logs_carry_ids_never_text_or_keys(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    key = await make_key()
    text = "zorblat quintessence my secret sorrow"
    with capture_logs() as logs:
        ok = await client.post("/v1/triage", json={"text": text}, headers=key.headers)
        await client.post("/v1/triage", json={"text": text, "extra": text}, headers=key.headers)
    entries = [e for e in logs if e["event"] == "partner_triage"]
    assert [e["status"] for e in entries] == [200, 422]
    assert all(e["api_key_id"] == str(key.id) for e in entries)
    assert entries[0]["request_id"] == int(ok.headers["x-request-id"])
    dumped = repr(logs)
    assert "zorblat" not in dumped
    assert key.token.rsplit("_", 1)[1] not in dumped


async def test_openapi_describes_both_request_shapes_and_every_error(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/triage"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    shapes = {s["title"]: s for s in schema["oneOf"]}
    assert set(shapes) == {"TriageItem", "TriageBatch"}
    assert shapes["TriageItem"]["required"] == ["text"]
    assert shapes["TriageItem"]["additionalProperties"] is False
    assert shapes["TriageBatch"]["properties"]["items"]["maxItems"] == 100
    assert shapes["TriageBatch"]["properties"]["items"]["items"]["title"] == "TriageItem"
    for status in ("400", "401", "403", "409", "413", "415", "422", "429"):
        ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ErrorBody"
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    for code in ("missing_api_key", "invalid_api_key", "key_revoked"):
        assert code in operation["responses"]["401"]["description"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert {r["$ref"].rsplit("/", 1)[1] for r in ok["anyOf"]} == {
        "TriageResultOut",
        "TriageBatchOut",
    }
    assert [p["name"] for p in operation["parameters"]] == [
        "Idempotency-Key",
        "resources",
        "locale",
    ]
    assert operation["security"] == [{"PartnerKey": []}]
    assert spec["components"]["securitySchemes"]["PartnerKey"]["scheme"] == "bearer"
