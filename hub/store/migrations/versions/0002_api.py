"""HTTP API: bearer tokens (hashed), dead letters kept for admins, the gateway's seen-list.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_users',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('agency', sa.String(length=13), nullable=True),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('gateway_seen',
    sa.Column('agency', sa.String(length=13), nullable=False),
    sa.Column('message_id', sa.String(length=400), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('agency', 'message_id')
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('original_user', sa.String(length=128), nullable=True),
    sa.Column('original_exchange', sa.String(length=64), nullable=True),
    sa.Column('original_routing_key', sa.String(length=128), nullable=True),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settled_by', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['sha256'], ['packages.sha256'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_dead_letters_state', 'dead_letters', ['state', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_dead_letters_state', table_name='dead_letters')
    op.drop_table('dead_letters')
    op.drop_table('gateway_seen')
    op.drop_table('api_users')
