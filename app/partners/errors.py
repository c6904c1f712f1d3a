"""Stable error codes of the partner API (the table partners build their clients against).

| status | code                    | when                                                       |
|--------|-------------------------|------------------------------------------------------------|
| 400    | invalid_json            | body is not one well-formed UTF-8 JSON document            |
| 401    | missing_api_key         | no ``Authorization: Bearer ...`` header                    |
| 401    | invalid_api_key         | malformed, unknown or wrong key (deliberately one code)    |
| 401    | key_revoked             | the right key, but revoked: 401 because the credential is  |
|        |                         | dead (RFC 6750 ``invalid_token``); only its holder sees it |
| 403    | insufficient_scope      | a valid key without the scope the route needs              |
| 409    | idempotency_key_reused  | the Idempotency-Key was used before with another body      |
| 413    | payload_too_large       | body over ``triage_max_body_bytes``                        |
| 415    | unsupported_media_type  | Content-Type is not JSON                                   |
| 422    | validation_error        | JSON of the wrong shape, types or sizes, or extra fields   |
| 422    | invalid_idempotency_key | Idempotency-Key empty, over 255 chars or not visible ASCII |
| 429    | rate_limited            | over the key's rate; ``Retry-After`` says when to retry    |
"""

from __future__ import annotations

from app.core.errors import Conflict, Forbidden, Unauthorized, ValidationFailed

# RFC 6750 §3: every 401 from a bearer-protected resource names the scheme.
_BEARER_CHALLENGE = 'Bearer realm="beacon"'


def _challenge(error: str | None = None, **params: str) -> dict[str, str]:
    parts = [_BEARER_CHALLENGE]
    if error is not None:
        parts.append(f'error="{error}"')
    parts.extend(f'{name}="{value}"' for name, value in params.items())
    return {"WWW-Authenticate": ", ".join(parts)}


class MissingApiKey(Unauthorized):
    code = "missing_api_key"

    def __init__(self) -> None:
        super().__init__(
            "send the partner key as 'Authorization: Bearer <key>'", headers=_challenge()
        )


class InvalidApiKey(Unauthorized):
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__("the API key is not valid", headers=_challenge("invalid_token"))


class KeyRevoked(Unauthorized):
    code = "key_revoked"

    def __init__(self) -> None:
        super().__init__("the API key has been revoked", headers=_challenge("invalid_token"))


class InsufficientScope(Forbidden):
    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"the API key lacks the '{scope}' scope",
            headers=_challenge("insufficient_scope", scope=scope),
        )


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used with a different request body")


class InvalidIdempotencyKey(ValidationFailed):
    code = "invalid_idempotency_key"

    def __init__(self) -> None:
        super().__init__("Idempotency-Key must be 1-255 visible ASCII characters")
