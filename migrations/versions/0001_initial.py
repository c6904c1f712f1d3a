"""Initial schema: partner keys and request log, chat sessions and messages, audit events.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 22:48:38.791916
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Column types spelled out here rather than imported from app/, so this file keeps meaning the
# same schema however the application's types evolve.
TIMESTAMPTZ = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('key_hash', sa.String(length=128), nullable=False),
    sa.Column('scopes', JSON, nullable=False),
    sa.Column('rate_limit_per_min', sa.Integer(), nullable=True),
    sa.Column('created_at', TIMESTAMPTZ, nullable=False),
    sa.Column('revoked_at', TIMESTAMPTZ, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
    )
    op.create_table('chat_sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('resume_token_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('urgency', sa.SmallInteger(), nullable=False),
    sa.Column('signals', JSON, nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('created_at', TIMESTAMPTZ, nullable=False),
    sa.Column('waiting_since', TIMESTAMPTZ, nullable=False),
    sa.Column('updated_at', TIMESTAMPTZ, nullable=False),
    sa.Column('visitor_seen_at', TIMESTAMPTZ, nullable=False),
    sa.Column('visitor_connected', sa.Boolean(), nullable=False),
    sa.Column('token_expires_at', TIMESTAMPTZ, nullable=False),
    sa.Column('closed_at', TIMESTAMPTZ, nullable=True),
    sa.Column('erased_at', TIMESTAMPTZ, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_sessions')),
    sa.UniqueConstraint('resume_token_hash', name=op.f('uq_chat_sessions_resume_token_hash'))
    )
    op.create_index('ix_chat_sessions_queue', 'chat_sessions', ['status', 'urgency', 'waiting_since'], unique=False)
    op.create_table('events',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('occurred_at', TIMESTAMPTZ, nullable=False),
    sa.Column('actor_type', sa.String(length=32), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject_type', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('details', JSON, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    op.create_index('ix_events_subject', 'events', ['subject_type', 'subject_id', 'id'], unique=False)
    op.create_table('messages',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('sender', sa.String(length=16), nullable=False),
    sa.Column('sender_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=True),
    sa.Column('client_msg_id', sa.String(length=64), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('sent_at', TIMESTAMPTZ, nullable=False),
    sa.Column('level', sa.SmallInteger(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('signals', JSON, nullable=True),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('triage_ms', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['session_id'], ['chat_sessions.id'], name=op.f('fk_messages_session_id_chat_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('session_id', 'sender', 'client_msg_id', name=op.f('uq_messages_session_id_sender_client_msg_id')),
    sa.UniqueConstraint('session_id', 'seq', name=op.f('uq_messages_session_id_seq'))
    )
    op.create_index('ix_messages_sent_at', 'messages', ['sent_at'], unique=False)
    op.create_table('triage_requests',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('api_key_id', sa.Uuid(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response_body', JSON, nullable=False),
    sa.Column('item_count', sa.Integer(), nullable=False),
    sa.Column('levels', JSON, nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.Column('created_at', TIMESTAMPTZ, nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_triage_requests_api_key_id_api_keys'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_triage_requests')),
    sa.UniqueConstraint('api_key_id', 'idempotency_key', name=op.f('uq_triage_requests_api_key_id_idempotency_key'))
    )


def downgrade() -> None:
    op.drop_table('triage_requests')
    op.drop_index('ix_messages_sent_at', table_name='messages')
    op.drop_table('messages')
    op.drop_index('ix_events_subject', table_name='events')
    op.drop_table('events')
    op.drop_index('ix_chat_sessions_queue', table_name='chat_sessions')
    op.drop_table('chat_sessions')
    op.drop_table('api_keys')
