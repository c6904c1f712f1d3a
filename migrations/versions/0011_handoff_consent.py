"""Consent for handoff extras: what the visitor agreed to share with a hotline partner.

Revision ID: 0011_handoff_consent
Revises: 0010_session_mutes
Create Date: 2026-12-01

Hand-written.

On ``chat_sessions`` (SPEC §5: the handoff never waits for consent; consent decides only what
is shared beyond the minimum):

* ``consent_asked_at``: when a volunteer or supervisor last asked the question in the chat;
  the visitor may answer only once asked.
* ``consent_answered_at``, ``consent_transcript``, ``consent_contact``: the visitor's last
  answer (NULL: never answered, shared as "no").
* ``contact_phone``: the number the visitor chose to share (only with ``consent_contact``).
  Personal data: never logged or audited, cleared by erasure and by retention.

Downgrade drops the columns (SQLite: plain ``ALTER TABLE DROP COLUMN``, as in 0007).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_handoff_consent"
down_revision: str | None = "0010_session_mutes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)
COLUMNS = (
    ("consent_asked_at", TIMESTAMPTZ),
    ("consent_answered_at", TIMESTAMPTZ),
    ("consent_transcript", sa.Boolean()),
    ("consent_contact", sa.Boolean()),
    ("contact_phone", sa.String(32)),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("chat_sessions", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE chat_sessions DROP COLUMN {name}")
        else:
            op.drop_column("chat_sessions", name)
