"""Canned replies (issue 14): per-locale snippets for volunteers, managed by admins.

Revision ID: 0012_canned_replies
Revises: 0011_handoff_consent
Create Date: 2026-12-01

Hand-written.

``canned_replies`` holds reviewed text with placeholders (``{volunteer_name}``, ``{hotline}``,
``{hotline_name}``, ``{emergency}``), checked when an admin saves it and filled on the server
when a volunteer lists them (app/resources/canned.py). Nothing else refers to the table, so
downgrade simply drops it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_canned_replies"
down_revision: str | None = "0011_handoff_consent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("title", sa.String(80), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_canned_replies_locale", "canned_replies", ["locale"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_canned_replies_locale", table_name="canned_replies")
    op.drop_table("canned_replies")
