"""The partner key format: ``bk_<prefix>_<secret>``.

The prefix is a public lookup handle (shown by ``beacon partner list``, safe in logs), so that
verifying a key is one indexed read plus one digest comparison; only the secret part is hashed.
Both parts are lowercase hex, so a key survives copy-paste, shell quoting and URL encoding.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from app.core.security import SECRET_BYTES, new_secret

KEY_SCHEME = "bk"
PREFIX_BYTES = 8  # 64 bits: collisions among a partner list are not a practical concern
_KEY_RE = re.compile(
    rf"{KEY_SCHEME}_([0-9a-f]{{{2 * PREFIX_BYTES}}})_([0-9a-f]{{{2 * SECRET_BYTES}}})"
)
_MAX_KEY_LENGTH = len(KEY_SCHEME) + 2 + 2 * PREFIX_BYTES + 2 * SECRET_BYTES


@dataclass(frozen=True, slots=True)
class IssuedKey:
    prefix: str
    secret: str

    @property
    def token(self) -> str:
        return f"{KEY_SCHEME}_{self.prefix}_{self.secret}"


def issue_key() -> IssuedKey:
    return IssuedKey(prefix=secrets.token_hex(PREFIX_BYTES), secret=new_secret())


def split_key(token: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a well-formed key, else None (nothing is looked up for those)."""
    if len(token) != _MAX_KEY_LENGTH:
        return None
    match = _KEY_RE.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None
