"""Webhook signatures, both directions: ``sha256=<hex HMAC-SHA256(secret, ts + "." + body)>``.

The timestamp is inside the MAC so a captured request cannot be replayed later than the
receiver's tolerance; the body is signed byte for byte as sent.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_PREFIX = "sha256="


class SignatureError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {"X-Beacon-Timestamp": timestamp, "X-Beacon-Signature": sign(secret, timestamp, body)}


def verify(
    secret: str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    tolerance_s: float,
    now: float | None = None,
) -> None:
    """Raises :class:`SignatureError` (codes ``missing_signature``, ``stale_timestamp``,
    ``invalid_signature``) unless the request is fresh and signed with ``secret``."""
    if not timestamp or not signature:
        raise SignatureError("missing_signature", "X-Beacon-Timestamp and X-Beacon-Signature")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("invalid_signature", "timestamp must be Unix seconds")
    current = now if now is not None else time.time()
    if abs(current - int(timestamp)) > tolerance_s:
        raise SignatureError("stale_timestamp", "timestamp outside the allowed window")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8")):
        raise SignatureError("invalid_signature", "signature does not match")
