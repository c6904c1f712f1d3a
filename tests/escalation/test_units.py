"""Pure parts of escalation: signing, partner selection and file validation, the circuit
breaker, safety-message templates and the retry schedule."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.escalation.breaker import BreakerState, CircuitBreaker
from app.escalation.delivery import backoff_s, headers_for
from app.escalation.partners import (
    Partner,
    PartnersConfig,
    PartnersFileError,
    load_partners,
    parse_partners,
)
from app.escalation.signing import SignatureError, sign, signed_headers, verify
from app.escalation.templates import MessageKind, available_locales, load, render
from app.triage.types import Level

SECRET = "s3cret-s3cret-s3cret"

# ------------------------------------------------------------------------------ signing


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1700000000", body) == f"sha256={expected}"


def test_verify_accepts_fresh_signature() -> None:
    body = b'{"status":"accepted"}'
    headers = signed_headers(SECRET, body, now=1_700_000_000)
    verify(
        SECRET,
        timestamp=headers["X-Beacon-Timestamp"],
        signature=headers["X-Beacon-Signature"],
        body=body,
        tolerance_s=300,
        now=1_700_000_100,
    )


TS = "X-Beacon-Timestamp"
SIG = "X-Beacon-Signature"
Mutation = Any


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        pytest.param(lambda h, b: (h[TS], h[SIG], b + b" "), "invalid_signature", id="body"),
        pytest.param(lambda h, b: (h[TS], "sha256=" + "0" * 64, b), "invalid_signature", id="mac"),
        pytest.param(
            lambda h, b: (str(int(h[TS]) + 1), h[SIG], b), "invalid_signature", id="timestamp"
        ),
        pytest.param(lambda h, b: (None, h[SIG], b), "missing_signature", id="no-timestamp"),
        pytest.param(lambda h, b: (h[TS], None, b), "missing_signature", id="no-signature"),
        pytest.param(lambda h, b: ("-5", h[SIG], b), "invalid_signature", id="negative"),
        pytest.param(
            lambda h, b: ("1699999000", sign(SECRET, "1699999000", b), b),
            "stale_timestamp",
            id="stale",
        ),
    ],
)
def test_verify_rejects(mutate: Any, code: str) -> None:
    body = b'{"status":"accepted"}'
    headers = signed_headers(SECRET, body, now=1_700_000_000)
    timestamp, signature, sent = mutate(headers, body)
    with pytest.raises(SignatureError) as caught:
        verify(
            SECRET,
            timestamp=timestamp,
            signature=signature,
            body=sent,
            tolerance_s=300,
            now=1_700_000_000,
        )
    assert caught.value.code == code


def test_wrong_secret_is_rejected() -> None:
    body = b"{}"
    headers = signed_headers("another-secret-0000", body, now=1_700_000_000)
    with pytest.raises(SignatureError):
        verify(
            SECRET,
            timestamp=headers["X-Beacon-Timestamp"],
            signature=headers["X-Beacon-Signature"],
            body=body,
            tolerance_s=300,
            now=1_700_000_000,
        )


@given(st.binary(max_size=512), st.text(max_size=80), st.text(max_size=20))
def test_verify_never_crashes_on_garbage(body: bytes, signature: str, timestamp: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(
            SECRET,
            timestamp=timestamp,
            signature=signature,
            body=body,
            tolerance_s=300,
            now=1_700_000_000,
        )
    assert caught.value.code in {"invalid_signature", "missing_signature", "stale_timestamp"}


def test_webhook_headers_carry_a_stable_idempotency_key() -> None:
    partner = _partner("a")
    handoff_id = uuid.uuid4()
    first = headers_for(partner, handoff_id, b"{}", 1, now=1_700_000_000)
    retry = headers_for(partner, handoff_id, b"{}", 2, now=1_700_000_009)
    assert first["Idempotency-Key"] == retry["Idempotency-Key"] == str(handoff_id)
    assert first["X-Beacon-Signature"] != retry["X-Beacon-Signature"]  # timestamp is signed
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", first["X-Beacon-Signature"])


# ------------------------------------------------------------------------------ partners


def _partner(name: str, **overrides: Any) -> Partner:
    values: dict[str, Any] = {
        "name": name,
        "url": f"https://{name}.example/handoff",
        "secret": SECRET,
        "phone": "+1 555 0100",
        "locales": ["en"],
        "levels": ["imminent"],
    }
    values.update(overrides)
    return Partner.model_validate(values)


def test_selection_by_locale_and_level_with_fallback() -> None:
    config = PartnersConfig(
        partners=[
            _partner("english", locales=["en"], levels=["imminent", "high"]),
            _partner("spanish", locales=["es-MX", "es"], levels=["imminent"]),
            _partner("anyone", locales=["*"], levels=["imminent"], fallback=True),
        ]
    )

    def names(locale: str | None, level: Level) -> list[str]:
        return [p.name for p in config.candidates(locale, level)]

    assert names("en-US", Level.imminent) == ["english", "anyone"]
    assert names("es", Level.imminent) == ["spanish", "anyone"]
    assert names("es", Level.high) == ["anyone"]  # nobody serves Spanish at high: fallback
    assert names("de", Level.imminent) == ["anyone"]
    assert names(None, Level.imminent) == ["anyone"]


def test_first_partner_is_the_fallback_unless_one_is_marked() -> None:
    config = PartnersConfig(partners=[_partner("first"), _partner("second", locales=["fr"])])
    assert config.fallback.name == "first"
    assert [p.name for p in config.candidates("fr", Level.imminent)] == ["second", "first"]


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"partners": []}, "partners"),
        ({"partners": [{"name": "x"}]}, "url"),
        ({"partners": [{**_partner("x").model_dump(mode="json"), "url": "ftp://x"}]}, "url"),
        ({"partners": [{**_partner("x").model_dump(mode="json"), "levels": ["urgent"]}]}, "urgent"),
        ({"partners": [{**_partner("x").model_dump(mode="json"), "secret": "short"}]}, "secret"),
        ({"partners": [{**_partner("x").model_dump(mode="json"), "phone": "call me"}]}, "phone"),
        ({"partners": [{**_partner("x").model_dump(mode="json"), "extra": 1}]}, "extra"),
    ],
)
def test_bad_partners_file_is_a_clear_startup_error(
    tmp_path: Path, document: dict[str, Any], fragment: str
) -> None:
    partners = document["partners"]
    for entry in partners:  # model_dump hides the secret; put a real one back where present
        if entry.get("secret") == "**********":
            entry["secret"] = SECRET
    path = tmp_path / "partners.json"
    path.write_text(json.dumps(document))
    with pytest.raises(PartnersFileError) as caught:
        load_partners(path)
    message = str(caught.value)
    assert "BEACON_PARTNERS_FILE" in message
    assert fragment in message
    assert SECRET not in message


def test_duplicate_names_and_two_fallbacks_are_refused() -> None:
    entry = _partner("x").model_dump(mode="json") | {"secret": SECRET}
    with pytest.raises(PartnersFileError, match="unique"):
        parse_partners(json.dumps({"partners": [entry, entry]}))
    a = entry | {"fallback": True}
    b = entry | {"name": "y", "fallback": True}
    with pytest.raises(PartnersFileError, match="fallback"):
        parse_partners(json.dumps({"partners": [a, b]}))


def test_unreadable_or_non_json_file(tmp_path: Path) -> None:
    with pytest.raises(PartnersFileError, match="cannot read"):
        load_partners(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PartnersFileError, match="not valid JSON"):
        load_partners(bad)
    assert load_partners(None) is None


def test_the_service_refuses_to_start_with_a_bad_file(tmp_path: Path) -> None:
    import asyncio

    from app.core.config import Settings
    from app.main import create_app

    bad = tmp_path / "partners.json"
    bad.write_text(json.dumps({"partners": [{"name": "x"}]}))
    app = create_app(Settings(partners_file=bad, database_url="sqlite+aiosqlite:///:memory:"))

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover

    with pytest.raises(PartnersFileError, match="invalid BEACON_PARTNERS_FILE"):
        asyncio.run(start())


# ------------------------------------------------------------------------------ breaker


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """Read through a call, so the type checker does not freeze the state between asserts."""
    return breaker.state


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_n_failures_and_half_opens_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert state_of(breaker) is BreakerState.closed
    assert breaker.allow()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.open
    assert not breaker.allow()
    assert breaker.retry_after_s() == 10
    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10.0
    assert state_of(breaker) is BreakerState.half_open
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # no second probe while it is in flight
    breaker.record_success()
    assert state_of(breaker) is BreakerState.closed
    assert breaker.failures == 0


def test_failed_probe_reopens_for_a_fresh_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=5, clock=clock)
    breaker.record_failure()
    clock.now = 5
    assert breaker.allow()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.open
    clock.now = 9
    assert not breaker.allow()
    clock.now = 10
    assert breaker.allow()


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown_s=5, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.closed


# ------------------------------------------------------------------------------ templates

# Method words and means (safe-messaging: never in our texts) and promises we must not make.
METHOD_WORDS = re.compile(
    r"pill|tablet|overdos|dose|mg\b|hang|rope|bridge|jump|gun|knife|blade|cut|poison|"
    r"antifreeze|tylenol|acetaminophen|ibuprofen|paracetamol|pastill|pendr|couteau|sobredosis",
    re.IGNORECASE,
)
CONFIDENTIALITY_PROMISES = re.compile(
    r"confidential|no one will (ever )?know|never tell|secret|anonymous|confidencial|"
    r"nadie sabr|personne ne saura",
    re.IGNORECASE,
)


@pytest.mark.parametrize("locale", available_locales())
@pytest.mark.parametrize("kind", list(MessageKind))
def test_templates_follow_safe_messaging(locale: str, kind: MessageKind) -> None:
    rendered = render(kind, f"{locale}-ZZ", partner_name="Helpline", partner_phone="0800 111")
    text = rendered.text
    assert not METHOD_WORDS.search(text), text
    assert not CONFIDENTIALITY_PROMISES.search(text), text
    # Always a route to immediate help: the emergency wording of that locale.
    assert load(locale).emergency["default"] in text
    assert "{" not in text
    if rendered.kind in (MessageKind.safety, MessageKind.handoff_failed):
        assert "0800 111" in text  # the hotline's number
    assert len(text) < 600


def test_emergency_number_by_region_and_language_fallback() -> None:
    assert "999" in render(MessageKind.safety, "en-GB", partner_name="P", partner_phone="1").text
    assert "911" in render(MessageKind.safety, "en_US", partner_name="P", partner_phone="1").text
    assert "112" in render(MessageKind.safety, "es-ES", partner_name="P", partner_phone="1").text
    unknown_language = render(MessageKind.safety, "xx-YY", partner_name="P", partner_phone="1")
    assert unknown_language.locale == "en"
    assert "your local emergency number" in unknown_language.text


def test_without_a_partner_no_blank_phone_number() -> None:
    for kind in (MessageKind.safety, MessageKind.handoff_failed):
        rendered = render(kind, "en")
        assert rendered.kind.value.endswith("_no_partner")
        assert " at ." not in rendered.text
        assert "emergency" in rendered.text


def test_template_files_are_complete() -> None:
    assert {"en", "es", "fr"} <= set(available_locales())
    for locale in available_locales():
        assert set(load(locale).messages) == set(MessageKind)


# ------------------------------------------------------------------------------ backoff


def test_backoff_schedule_grows_exponentially_within_jitter_bounds() -> None:
    low = [backoff_s(n, base_s=0.5, cap_s=15, rand=lambda a, b: a) for n in range(1, 9)]
    high = [backoff_s(n, base_s=0.5, cap_s=15, rand=lambda a, b: b) for n in range(1, 9)]
    assert high == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert low == [h / 2 for h in high]


@given(st.integers(min_value=1, max_value=60))
def test_backoff_with_real_jitter_stays_in_bounds(attempt: int) -> None:
    ceiling = min(15.0, 0.5 * 2 ** (attempt - 1))
    delay = backoff_s(attempt, base_s=0.5, cap_s=15.0)
    assert ceiling / 2 <= delay <= ceiling


def test_in_chat_safety_message_keeps_to_the_route_to_immediate_help() -> None:
    """A volunteer is already in the chat: no "someone is coming", no other line to call."""
    for locale in available_locales():
        rendered = render(
            MessageKind.safety_in_chat,
            f"{locale}-ZZ",
            partner_name="Helpline",
            partner_phone="0800",
        )
        assert rendered.kind is MessageKind.safety_in_chat
        assert load(locale).emergency["default"] in rendered.text
        assert "0800" not in rendered.text
        assert "Helpline" not in rendered.text
        assert len(rendered.text) < len(render(MessageKind.safety, locale).text)
