"""The resource library (issue 14, SPEC §1): reviewed resources volunteers send as cards.

Revision ID: 0008_resources
Revises: 0007_visitor_spoke_at
Create Date: 2026-12-01

Hand-written.

``resources`` holds what an admin entered (title, locale, topics, the urgency levels it suits,
a URL and/or a phone number, a short text). A card sent into a chat is a snapshot in the
message itself (app/chat/cards.py), so removing a resource never changes a transcript and no
foreign key ties messages to this table.

Downgrade drops the table: the cards already sent stay in their transcripts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_resources"
down_revision: str | None = "0007_visitor_spoke_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("topics", JSON, nullable=False),
        sa.Column("levels", JSON, nullable=False),
        sa.Column("url", sa.String(500), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("url IS NOT NULL OR phone IS NOT NULL", name="ck_resources_url_or_phone"),
    )
    op.create_index("ix_resources_locale", "resources", ["locale"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_resources_locale", table_name="resources")
    op.drop_table("resources")
