"""Escalation: handoffs (the persisted handoff clock and retry schedule), their delivery
attempts, and active-rescue requests (SPEC §5).

Revision ID: 0004_escalation
Revises: 0003_volunteers
Create Date: 2026-11-26

Hand-written. The partial unique index is the database's guarantee that a session has at most
one open handoff, however many instances react to the same urgency rise.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_escalation"
down_revision: str | None = "0003_volunteers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN_SQL = "status IN ('scheduled', 'delivering', 'delivered')"


def upgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=True),
        sa.Column("due_at", TIMESTAMPTZ, nullable=False),
        sa.Column("safety_sent_at", TIMESTAMPTZ, nullable=True),
        sa.Column("notice_due", sa.String(length=32), nullable=True),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMPTZ, nullable=True),
        sa.Column("delivery_deadline_at", TIMESTAMPTZ, nullable=True),
        sa.Column("delivered_at", TIMESTAMPTZ, nullable=True),
        sa.Column("partner_status_at", TIMESTAMPTZ, nullable=True),
        sa.Column("partner_reference", sa.String(length=200), nullable=True),
        sa.Column("active_rescue", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False),
        sa.Column("updated_at", TIMESTAMPTZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["chat_sessions.id"],
            name=op.f("fk_handoffs_session_id_chat_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    op.create_index("ix_handoffs_session_id", "handoffs", ["session_id"], unique=False)
    op.create_index("ix_handoffs_status_due_at", "handoffs", ["status", "due_at"], unique=False)
    op.create_index(
        "ix_handoffs_status_next_attempt_at",
        "handoffs",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index(
        "uq_handoffs_one_open_per_session",
        "handoffs",
        ["session_id"],
        unique=True,
        postgresql_where=sa.text(OPEN_SQL),
        sqlite_where=sa.text(OPEN_SQL),
    )
    op.create_table(
        "handoff_attempts",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("handoff_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=True),
        sa.Column("started_at", TIMESTAMPTZ, nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["handoff_id"],
            ["handoffs.id"],
            name=op.f("fk_handoff_attempts_handoff_id_handoffs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_attempts")),
    )
    op.create_index(
        "ix_handoff_attempts_handoff_id", "handoff_attempts", ["handoff_id", "number"], unique=False
    )
    op.create_table(
        "rescue_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", TIMESTAMPTZ, nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", TIMESTAMPTZ, nullable=True),
        sa.Column("handoff_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["chat_sessions.id"],
            name=op.f("fk_rescue_requests_session_id_chat_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["handoff_id"],
            ["handoffs.id"],
            name=op.f("fk_rescue_requests_handoff_id_handoffs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rescue_requests")),
    )
    op.create_index(
        "ix_rescue_requests_session_id", "rescue_requests", ["session_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_rescue_requests_session_id", table_name="rescue_requests")
    op.drop_table("rescue_requests")
    op.drop_index("ix_handoff_attempts_handoff_id", table_name="handoff_attempts")
    op.drop_table("handoff_attempts")
    op.drop_index("uq_handoffs_one_open_per_session", table_name="handoffs")
    op.drop_index("ix_handoffs_status_next_attempt_at", table_name="handoffs")
    op.drop_index("ix_handoffs_status_due_at", table_name="handoffs")
    op.drop_index("ix_handoffs_session_id", table_name="handoffs")
    op.drop_table("handoffs")
