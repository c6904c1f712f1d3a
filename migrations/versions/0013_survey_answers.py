"""Post-chat survey answers (issue 14): numbers only, one row per session.

Revision ID: 0013_survey_answers
Revises: 0012_canned_replies
Create Date: 2026-12-01

Hand-written.

``survey_answers`` holds what a visitor answered after their chat ended: "did this help?" and
"do you feel safer now?", each 1-5 or skipped, and when. No free text, so neither erasure nor
retention needs to touch it; the row goes with its session (ON DELETE CASCADE). Downgrade
drops the table and the answers with it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_survey_answers"
down_revision: str | None = "0012_canned_replies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "survey_answers",
        sa.Column(
            "session_id",
            sa.Uuid(),
            sa.ForeignKey("chat_sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("helped", sa.SmallInteger(), nullable=True),
        sa.Column("safer", sa.SmallInteger(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("helped BETWEEN 1 AND 5", name="ck_survey_answers_helped_scale"),
        sa.CheckConstraint("safer BETWEEN 1 AND 5", name="ck_survey_answers_safer_scale"),
        sa.CheckConstraint(
            "helped IS NOT NULL OR safer IS NOT NULL",
            name="ck_survey_answers_something_answered",
        ),
    )


def downgrade() -> None:
    op.drop_table("survey_answers")
