"""Properties of the request schema and the request fingerprint, over generated inputs."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import InvalidJson, ValidationFailed
from app.partners.schemas import (
    DEFAULT_LIMITS,
    NON_BLANK_RE,
    LevelName,
    RequestLimits,
    TriageBatch,
    TriageItem,
)
from app.partners.service import PartnerPrincipal, parse_triage_body, request_fingerprint
from app.triage import Level

LIMITS = DEFAULT_LIMITS
# Any Unicode scalar value (JSON cannot carry lone surrogates as UTF-8).
texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=1500)
# Characters that take several UTF-8 bytes, so the byte limit is crossed well before 4096 chars.
wide_texts = st.text(alphabet=st.sampled_from("é中😂 "), min_size=1000, max_size=2100)


def _parse(value: Any, limits: RequestLimits = LIMITS) -> TriageItem | TriageBatch:
    return parse_triage_body(json.dumps(value).encode(), limits)


def _acceptable(text: str) -> bool:
    return bool(text.strip()) and len(text.encode()) <= LIMITS.max_text_bytes


def test_non_blank_pattern_is_exactly_pythons_whitespace() -> None:
    for codepoint in range(sys.maxunicode + 1):
        char = chr(codepoint)
        assert (NON_BLANK_RE.search(char) is None) == char.isspace(), hex(codepoint)


def test_level_names_match_the_engine() -> None:
    assert list(get_args(LevelName)) == [level.name for level in Level]


@settings(max_examples=300)
@given(text=texts | wide_texts)
def test_text_is_accepted_exactly_when_non_blank_and_within_the_byte_limit(text: str) -> None:
    if _acceptable(text):
        parsed = _parse({"text": text})
        assert isinstance(parsed, TriageItem)
        assert parsed.text == text
        assert parsed.context == []
    else:
        with pytest.raises(ValidationFailed):
            _parse({"text": text})


@settings(max_examples=200)
@given(context=st.lists(texts, max_size=60))
def test_context_is_accepted_exactly_when_every_item_is(context: list[str]) -> None:
    ok = len(context) <= LIMITS.max_context_items and all(_acceptable(c) for c in context)
    if ok:
        assert _parse({"text": "x", "context": context}) == TriageItem(text="x", context=context)
    else:
        with pytest.raises(ValidationFailed):
            _parse({"text": "x", "context": context})


@settings(max_examples=50)
@given(size=st.integers(min_value=0, max_value=130))
def test_batch_size_bounds(size: int) -> None:
    body = {"items": [{"text": f"t{i}"} for i in range(size)]}
    if 1 <= size <= LIMITS.max_batch_items:
        parsed = _parse(body)
        assert isinstance(parsed, TriageBatch)
        assert [i.text for i in parsed.items] == [f"t{i}" for i in range(size)]
    else:
        with pytest.raises(ValidationFailed):
            _parse(body)


non_strings: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.text(), max_size=2),
    st.dictionaries(st.text(), st.text(), max_size=2),
)


@given(value=non_strings)
def test_nothing_is_coerced_into_text(value: Any) -> None:
    for body in ({"text": value}, {"text": "x", "context": [value]}, {"items": [{"text": value}]}):
        with pytest.raises(ValidationFailed):
            _parse(body)


@given(name=st.text(min_size=1).filter(lambda n: n not in {"text", "context"}), value=texts)
def test_unknown_fields_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _parse({"text": "x", name: value})
    assert any(e["type"] == "extra_forbidden" for e in refused.value.detail)


@settings(max_examples=300)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_are_parsed_or_refused_with_a_stable_error(raw: bytes) -> None:
    refusal: InvalidJson | ValidationFailed | None = None
    try:
        parse_triage_body(raw, LIMITS)
    except (InvalidJson, ValidationFailed) as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.code in {"invalid_json", "validation_error"}
        assert refusal.status_code in {400, 422}


PRINCIPAL = PartnerPrincipal(
    key_id=uuid.uuid4(),
    prefix="0" * 16,
    scopes=frozenset({"triage"}),
    rate_limit_per_min=None,
    fingerprint_key=b"a" * 64,
)


@given(
    text=texts.filter(_acceptable),
    context=st.lists(texts.filter(_acceptable), max_size=3),
    indent=st.sampled_from([None, 0, 2]),
)
def test_fingerprint_ignores_serialisation_and_tracks_content(
    text: str, context: list[str], indent: int | None
) -> None:
    canonical = _parse({"text": text, "context": context})
    reordered = parse_triage_body(
        json.dumps({"context": context, "text": text}, indent=indent, ensure_ascii=False).encode(),
        LIMITS,
    )
    assert request_fingerprint(PRINCIPAL, reordered) == request_fingerprint(PRINCIPAL, canonical)
    changed = _parse({"text": text + "!", "context": context})
    assert request_fingerprint(PRINCIPAL, changed) != request_fingerprint(PRINCIPAL, canonical)
    # An omitted context is the same request as an empty one.
    if not context:
        bare = _parse({"text": text})
        assert request_fingerprint(PRINCIPAL, bare) == request_fingerprint(PRINCIPAL, canonical)
