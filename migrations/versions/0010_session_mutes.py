"""Muting abusive visitors: a supervisor's mute of a session, one or two steps.

Revision ID: 0010_session_mutes
Revises: 0009_supervision
Create Date: 2026-12-01

Hand-written.

``session_mutes``: one row per mute. ``requested`` (a session at ``high`` or above: waits for a
second supervisor) → ``active`` (``until`` set; ``confirmed_by`` is the second supervisor, NULL
for a one-step mute) → ``lifted``; or ``requested`` → ``cancelled``. An ``active`` row past
``until`` is simply over (no sweep needed). ``reason`` is the supervisor's short reason about
conduct (never message text); it stays as the record of why a person was muted.

Downgrade drops the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_session_mutes"
down_revision: str | None = "0009_supervision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "session_mutes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "session_id",
            sa.Uuid(),
            sa.ForeignKey("chat_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("urgency_at_request", sa.SmallInteger(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", TIMESTAMPTZ, nullable=False),
        sa.Column("confirmed_by", sa.String(64), nullable=True),
        sa.Column("decided_at", TIMESTAMPTZ, nullable=True),
        sa.Column("until", TIMESTAMPTZ, nullable=True),
        sa.Column("lifted_by", sa.String(64), nullable=True),
        sa.Column("lifted_at", TIMESTAMPTZ, nullable=True),
    )
    op.create_index("ix_session_mutes_session", "session_mutes", ["session_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_session_mutes_session", table_name="session_mutes")
    op.drop_table("session_mutes")
