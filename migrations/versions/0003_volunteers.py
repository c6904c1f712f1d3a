"""Volunteers, offers/assignments and dispositions (routing, SPEC §4).

Revision ID: 0003_volunteers
Revises: 0001
Create Date: 2026-11-26

Hand-written. The two partial unique indexes on assignments are the database's own guarantee
that a session never has two active holders or two pending offers.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_volunteers"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "volunteers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("languages", JSON, nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("load", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_expires_at", TIMESTAMPTZ, nullable=False),
        sa.Column("revoked_at", TIMESTAMPTZ, nullable=True),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False),
        sa.Column("presence", sa.String(length=16), nullable=False),
        sa.Column("last_heartbeat_at", TIMESTAMPTZ, nullable=True),
        sa.Column("offline_since", TIMESTAMPTZ, nullable=True),
        sa.Column("idle_since", TIMESTAMPTZ, nullable=False),
        sa.CheckConstraint("load >= 0", name=op.f("ck_volunteers_load_not_negative")),
        sa.CheckConstraint("capacity >= 0", name=op.f("ck_volunteers_capacity_not_negative")),
        sa.CheckConstraint(
            "role IN ('volunteer', 'supervisor', 'admin')", name=op.f("ck_volunteers_role_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volunteers")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_volunteers_token_hash")),
    )
    op.create_table(
        "assignments",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("volunteer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("offered_at", TIMESTAMPTZ, nullable=False),
        sa.Column("expires_at", TIMESTAMPTZ, nullable=True),
        sa.Column("responded_at", TIMESTAMPTZ, nullable=True),
        sa.Column("ended_at", TIMESTAMPTZ, nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["chat_sessions.id"],
            name=op.f("fk_assignments_session_id_chat_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_id"],
            ["volunteers.id"],
            name=op.f("fk_assignments_volunteer_id_volunteers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    for name, status in (
        ("uq_assignments_one_active_per_session", "active"),
        ("uq_assignments_one_offer_per_session", "offered"),
    ):
        op.create_index(
            name,
            "assignments",
            ["session_id"],
            unique=True,
            postgresql_where=sa.text(f"status = '{status}'"),
            sqlite_where=sa.text(f"status = '{status}'"),
        )
    op.create_index(
        "ix_assignments_volunteer_status", "assignments", ["volunteer_id", "status"], unique=False
    )
    op.create_index(
        "ix_assignments_status_expires", "assignments", ["status", "expires_at"], unique=False
    )
    op.create_table(
        "dispositions",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("volunteer_id", sa.Uuid(), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("risk_level", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["chat_sessions.id"],
            name=op.f("fk_dispositions_session_id_chat_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_id"],
            ["volunteers.id"],
            name=op.f("fk_dispositions_volunteer_id_volunteers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispositions")),
    )
    op.create_index("ix_dispositions_session_id", "dispositions", ["session_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_dispositions_session_id", table_name="dispositions")
    op.drop_table("dispositions")
    op.drop_index("ix_assignments_status_expires", table_name="assignments")
    op.drop_index("ix_assignments_volunteer_status", table_name="assignments")
    op.drop_index("uq_assignments_one_offer_per_session", table_name="assignments")
    op.drop_index("uq_assignments_one_active_per_session", table_name="assignments")
    op.drop_table("assignments")
    op.drop_table("volunteers")
