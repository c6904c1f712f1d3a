"""Wire schemas of the partner triage API (separate from the ORM models).

Requests are strict: no coercion (``1`` is not a string), no unknown fields, no blank texts. The
size limits come from settings at run time (passed as validation context), so an operator who
raises ``max_text_bytes`` needs no code change; the OpenAPI schema documents the defaults.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from app.core.config import Settings
from app.triage import TriageResult


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_text_bytes: int
    max_context_items: int
    max_batch_items: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        return cls(
            max_text_bytes=settings.max_text_bytes,
            max_context_items=settings.triage_context_max,
            max_batch_items=settings.triage_batch_max,
        )


def _default(name: str) -> int:
    value = Settings.model_fields[name].default
    assert isinstance(value, int)
    return value


DEFAULT_LIMITS = RequestLimits(
    max_text_bytes=_default("max_text_bytes"),
    max_context_items=_default("triage_context_max"),
    max_batch_items=_default("triage_batch_max"),
)


def _limits(info: ValidationInfo) -> RequestLimits:
    return info.context if isinstance(info.context, RequestLimits) else DEFAULT_LIMITS


# "Non-blank" spelled as a regex so that the server and the published JSON Schema agree exactly:
# ``\S`` means different things in ECMA-262 and Python, so the class lists Python's whitespace
# (``str.isspace``) explicitly, in \u escapes every regex dialect reads the same way.
NON_BLANK_PATTERN = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
NON_BLANK_RE = re.compile(NON_BLANK_PATTERN)


def _check_text(value: str, info: ValidationInfo) -> str:
    if NON_BLANK_RE.search(value) is None:
        raise PydanticCustomError("blank_text", "text must contain a non-whitespace character")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        # Only reachable from Python callers: the JSON parser already rejects lone surrogates.
        raise PydanticCustomError("invalid_unicode", "text must be valid Unicode") from None
    limit = _limits(info).max_text_bytes
    if size > limit:
        raise PydanticCustomError(
            "text_too_long", "text must be at most {max_bytes} bytes of UTF-8", {"max_bytes": limit}
        )
    return value


def _check_context_length(value: Any, info: ValidationInfo) -> Any:
    # Before element validation, so a huge list is refused without validating every element.
    limit = _limits(info).max_context_items
    if isinstance(value, list) and len(value) > limit:
        raise PydanticCustomError(
            "too_many_context_items", "context holds at most {limit} messages", {"limit": limit}
        )
    return value


def _check_batch_size(value: Any, info: ValidationInfo) -> Any:
    limit = _limits(info).max_batch_items
    if isinstance(value, list) and len(value) > limit:
        raise PydanticCustomError(
            "too_many_items", "a batch holds at most {limit} items", {"limit": limit}
        )
    return value


Text = Annotated[
    str,
    AfterValidator(_check_text),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            # JSON Schema counts characters; the server enforces the limit in UTF-8 bytes.
            "maxLength": DEFAULT_LIMITS.max_text_bytes,
            "pattern": NON_BLANK_PATTERN,
            "description": (
                f"Non-blank, at most {DEFAULT_LIMITS.max_text_bytes} bytes of UTF-8 "
                "(server setting max_text_bytes)."
            ),
        }
    ),
]


class TriageItem(BaseModel):
    """One text to triage, with the conversation before it (oldest first)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"text": "I have the pills here", "context": []}]},
    )

    text: Text
    context: Annotated[list[Text], BeforeValidator(_check_context_length)] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": DEFAULT_LIMITS.max_context_items},
        description=(
            "Earlier messages of the same conversation, oldest first "
            f"(at most {DEFAULT_LIMITS.max_context_items}, server setting triage_context_max)."
        ),
    )


class TriageBatch(BaseModel):
    """Several independent texts; results come back in the same order."""

    model_config = ConfigDict(extra="forbid", strict=True)

    items: Annotated[list[TriageItem], BeforeValidator(_check_batch_size)] = Field(
        min_length=1,
        json_schema_extra={"maxItems": DEFAULT_LIMITS.max_batch_items},
        description=(
            f"1 to {DEFAULT_LIMITS.max_batch_items} items (server setting triage_batch_max)."
        ),
    )


def _request_shape(value: Any) -> str | None:
    if isinstance(value, dict):
        return "batch" if "items" in value else "single"
    if isinstance(value, TriageItem):
        return "single"
    if isinstance(value, TriageBatch):
        return "batch"
    return None


TriageRequestBody = Annotated[
    Annotated[TriageItem, Tag("single")] | Annotated[TriageBatch, Tag("batch")],
    Discriminator(
        _request_shape,
        custom_error_type="invalid_request_shape",
        custom_error_message="expected an object with 'text' (one text) or 'items' (a batch)",
    ),
]
triage_request_adapter: TypeAdapter[TriageItem | TriageBatch] = TypeAdapter(TriageRequestBody)


def _inline_local_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_local_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_local_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_local_refs(v, defs) for v in node]
    return node


def request_body_openapi() -> dict[str, Any]:
    """The ``requestBody`` of POST /v1/triage, for ``openapi_extra``.

    The route reads its body itself (so that authentication and the size limit come before any
    parsing), which means FastAPI cannot derive this part; the union is inlined because a route
    cannot add entries to ``components``.
    """
    schema = triage_request_adapter.json_schema()
    inlined = _inline_local_refs(schema, schema.get("$defs", {}))
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": inlined,
                "examples": {
                    "single": {
                        "summary": "One text with its conversation",
                        "value": {
                            "text": "I have them right here",
                            "context": ["I want to swallow all my pills"],
                        },
                    },
                    "batch": {
                        "summary": "A batch, answered in order",
                        "value": {
                            "items": [
                                {"text": "this exam is killing me"},
                                {"text": "I took 30 pills", "context": []},
                            ]
                        },
                    },
                },
            }
        },
    }


LevelName = Literal["none", "low", "moderate", "high", "imminent"]


class TriageResultOut(BaseModel):
    """The triage contract (SPEC §2) plus the time the engine took."""

    level: LevelName
    level_value: int = Field(ge=0, le=4)
    score: float = Field(ge=0.0, le=1.0)
    signals: list[str] = Field(description="Machine-readable reasons, e.g. method:overdose.")
    model_version: str
    elapsed_ms: float = Field(ge=0.0, description="Time the engine spent on this text.")

    @classmethod
    def from_result(cls, result: TriageResult, elapsed_ms: float) -> TriageResultOut:
        return cls.model_validate({**result.as_dict(), "elapsed_ms": round(elapsed_ms, 3)})


class TriageBatchOut(BaseModel):
    items: list[TriageResultOut] = Field(description="One result per item, in request order.")
    model_version: str
    elapsed_ms: float = Field(ge=0.0, description="Time the engine spent on the whole batch.")


TriageResponse = TriageResultOut | TriageBatchOut


class ApiKeyInfo(BaseModel):
    """What ``beacon partner list`` shows: never the key or its hash."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    rate_limit_per_min: int | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyIssued(BaseModel):
    """What ``beacon partner add`` prints, the one time the key exists in clear."""

    id: uuid.UUID
    name: str
    key: str
    prefix: str
    scopes: list[str]
    rate_limit_per_min: int | None
    created_at: datetime
