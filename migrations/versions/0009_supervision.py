"""Supervision: whispers between staff on a chat, and the supervisors who joined one.

Revision ID: 0009_supervision
Revises: 0008_resources
Create Date: 2026-12-01

Hand-written.

* ``whispers``: notes only staff see (a supervisor and the volunteer). A table of their own, not
  ``messages`` rows: every visitor read selects from ``messages``, so a whisper cannot leak into
  the visitor's transcript or replay, and the visitor's seqs stay gap-free. ``text`` is NULL
  once purged (retention, erasure), like ``messages.text``.
* ``session_supervisors``: who joined a chat (the visitor was told by a system line); a
  supervisor writes into a chat they do not hold only once joined.

Downgrade drops both tables (whisper text goes with them, as a purge would).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_supervision"
down_revision: str | None = "0008_resources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "whispers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "session_id",
            sa.Uuid(),
            sa.ForeignKey("chat_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author_id", sa.String(64), nullable=False),
        sa.Column("author_role", sa.String(16), nullable=False),
        sa.Column("client_msg_id", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("sent_at", TIMESTAMPTZ, nullable=False),
        sa.UniqueConstraint("session_id", "author_id", "client_msg_id"),
    )
    op.create_index("ix_whispers_session", "whispers", ["session_id", "id"])
    op.create_table(
        "session_supervisors",
        sa.Column(
            "session_id",
            sa.Uuid(),
            sa.ForeignKey("chat_sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "supervisor_id",
            sa.Uuid(),
            sa.ForeignKey("volunteers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("joined_at", TIMESTAMPTZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("session_supervisors")
    op.drop_index("ix_whispers_session", table_name="whispers")
    op.drop_table("whispers")
