"""Slots an assignment occupies (SPEC §4: a ``high``+ chat may count as more than one slot).

Revision ID: 0006_assignment_slots
Revises: 0005_retention
Create Date: 2026-11-28

Hand-written.

``assignments.slots`` records how many of the volunteer's slots the offer or chat took, so that
ending it gives back exactly that, whatever happened to the session's urgency meanwhile. Every
assignment before this revision took one slot, hence the server default of 1.

Downgrade: the code before this revision gives back one slot per assignment, so the extra slots
still held by open assignments are first returned to ``volunteers.load``; otherwise they would
stay taken for good.

SQLite: the column is added and dropped with plain ``ALTER TABLE`` (SQLite >= 3.35), never by
batch mode's table rebuild, which could lose the predicates of the partial unique indexes that
guarantee one holder and one pending offer per session.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_assignment_slots"
down_revision: str | None = "0005_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK_NAME = "ck_assignments_slots_positive"


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _is_sqlite():
        op.execute(
            "ALTER TABLE assignments ADD COLUMN slots SMALLINT DEFAULT 1 NOT NULL "
            f"CONSTRAINT {CHECK_NAME} CHECK (slots >= 1)"
        )
        return
    op.add_column(
        "assignments",
        sa.Column("slots", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
    )
    op.create_check_constraint(op.f(CHECK_NAME), "assignments", "slots >= 1")


def downgrade() -> None:
    op.execute(
        "UPDATE volunteers SET load = load - ("
        "SELECT COALESCE(SUM(a.slots - 1), 0) FROM assignments AS a "
        "WHERE a.volunteer_id = volunteers.id AND a.status IN ('offered', 'active'))"
    )
    if _is_sqlite():
        op.execute("ALTER TABLE assignments DROP COLUMN slots")
        return
    op.drop_constraint(op.f(CHECK_NAME), "assignments", type_="check")
    op.drop_column("assignments", "slots")
