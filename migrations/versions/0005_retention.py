"""Retention and at-risk visitors (SPEC §3, §9).

Revision ID: 0005_retention
Revises: 0004_escalation
Create Date: 2026-11-27

Hand-written.

* ``chat_sessions.visitor_lost_at``: when the sweeper found the visitor of a ``high``+ session
  gone past the grace period and alerted supervisors. The conditional UPDATE that sets it is what
  makes the alert fire once, however many instances sweep.
* The purge looks for text older than the retention period that is still there. Partial indexes
  on exactly that (``WHERE text IS NOT NULL`` / ``notes IS NOT NULL``) stay as small as the
  retention window instead of growing with history; the messages one replaces the plain
  ``ix_messages_sent_at`` (used by nothing else), so the insert path keeps the same index count.
* ``triage_requests.created_at`` gets an index so old partner request rows are found without a
  scan of the whole log.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_retention"
down_revision: str | None = "0004_escalation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)
MESSAGES_UNPURGED = "text IS NOT NULL"
NOTES_UNPURGED = "notes IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("chat_sessions") as batch:
        batch.add_column(sa.Column("visitor_lost_at", TIMESTAMPTZ, nullable=True))
    op.drop_index("ix_messages_sent_at", table_name="messages")
    op.create_index(
        "ix_messages_unpurged_sent_at",
        "messages",
        ["sent_at"],
        unique=False,
        postgresql_where=sa.text(MESSAGES_UNPURGED),
        sqlite_where=sa.text(MESSAGES_UNPURGED),
    )
    op.create_index(
        "ix_dispositions_unpurged_created_at",
        "dispositions",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text(NOTES_UNPURGED),
        sqlite_where=sa.text(NOTES_UNPURGED),
    )
    op.create_index(
        "ix_triage_requests_created_at", "triage_requests", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_triage_requests_created_at", table_name="triage_requests")
    op.drop_index("ix_dispositions_unpurged_created_at", table_name="dispositions")
    op.drop_index("ix_messages_unpurged_sent_at", table_name="messages")
    op.create_index("ix_messages_sent_at", "messages", ["sent_at"], unique=False)
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_column("visitor_lost_at")
