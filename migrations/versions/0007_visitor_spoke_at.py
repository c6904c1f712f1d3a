"""When a session's visitor first spoke (SPEC §9: drive-by sessions do not enter the queue).

Revision ID: 0007_visitor_spoke_at
Revises: 0006_assignment_slots
Create Date: 2026-12-01

Hand-written.

``chat_sessions.visitor_spoke_at`` is NULL until the visitor's first message is committed. A
session joins the queue (is routed, offered, counted in queue positions and depths) only once
it is set, so a hello alone — thousands of them from a flood — puts nobody behind anyone.

Upgrade: sessions that already hold a visitor message are marked as having spoken (at their
creation time: the wait they have already done is theirs), so an upgrade never takes a real
visitor out of the queue. Sessions without one stay NULL, as a new hello would.

Downgrade: the code before this revision queues every waiting session; dropping the column
gives that back.

SQLite: plain ``ALTER TABLE ADD/DROP COLUMN`` (SQLite >= 3.35), never batch mode's table
rebuild, which could lose the partial indexes' predicates (see 0006).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_visitor_spoke_at"
down_revision: str | None = "0006_assignment_slots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    op.add_column(
        "chat_sessions", sa.Column("visitor_spoke_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE chat_sessions SET visitor_spoke_at = created_at WHERE EXISTS ("
        "SELECT 1 FROM messages AS m "
        "WHERE m.session_id = chat_sessions.id AND m.sender = 'visitor')"
    )


def downgrade() -> None:
    if _is_sqlite():
        op.execute("ALTER TABLE chat_sessions DROP COLUMN visitor_spoke_at")
        return
    op.drop_column("chat_sessions", "visitor_spoke_at")
