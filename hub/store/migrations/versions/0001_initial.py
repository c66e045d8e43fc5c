"""Registry, trust, documents, deliveries, outbox and records.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agencies',
    sa.Column('code', sa.String(length=13), nullable=False),
    sa.Column('name', sa.Text(), server_default='', nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('connected', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('served_by', sa.String(length=13), nullable=True),
    sa.Column('accepts', sa.Text(), nullable=True),
    sa.Column('amqp_user', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('crls',
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('issuer', sa.Text(), nullable=False),
    sa.Column('pem', sa.Text(), nullable=False),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint')
    )
    op.create_table('hub_meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('packages',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_table('records',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=True),
    sa.Column('document_id', sa.String(length=255), nullable=True),
    sa.Column('sender', sa.String(length=13), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_index('ix_records_document', 'records', ['document_id'], unique=False)
    op.create_index('ix_records_event_at', 'records', ['event', 'at'], unique=False)
    op.create_table('trust_anchors',
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('pem', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint')
    )
    op.create_table('agency_certs',
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=13), nullable=False),
    sa.Column('pem', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['code'], ['agencies.code'], ),
    sa.PrimaryKeyConstraint('fingerprint')
    )
    op.create_index(op.f('ix_agency_certs_code'), 'agency_certs', ['code'], unique=False)
    op.create_table('documents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sender', sa.String(length=13), nullable=False),
    sa.Column('document_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('doc_type', sa.String(length=8), nullable=True),
    sa.Column('priority', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('refers_to', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('status_code', sa.String(length=2), nullable=True),
    sa.Column('adapter_user', sa.String(length=128), nullable=True),
    sa.Column('legacy_sha1', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['refers_to'], ['documents.id'], ),
    sa.ForeignKeyConstraint(['sha256'], ['packages.sha256'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sender', 'document_id', name='uq_documents_sender_docid')
    )
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('document', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('recipient', sa.String(length=13), nullable=False),
    sa.Column('system', sa.String(length=13), nullable=False),
    sa.Column('status', sa.String(length=2), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document'], ['documents.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('document', 'recipient', name='uq_deliveries_doc_recipient')
    )
    op.create_index('ix_deliveries_recipient', 'deliveries', ['recipient'], unique=False)
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('document', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('exchange', sa.String(length=64), nullable=False),
    sa.Column('routing_key', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('intake_sha256', sa.String(length=64), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document'], ['documents.id'], ),
    sa.ForeignKeyConstraint(['sha256'], ['packages.sha256'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_outbox_document'), 'outbox', ['document'], unique=False)
    op.create_index(op.f('ix_outbox_intake_sha256'), 'outbox', ['intake_sha256'], unique=False)
    op.create_index('ix_outbox_pending', 'outbox', ['sent_at', 'id'], unique=False)
    op.create_table('status_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('delivery', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status_code', sa.String(length=2), nullable=False),
    sa.Column('actor', sa.String(length=13), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status_document', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['delivery'], ['deliveries.id'], ),
    sa.ForeignKeyConstraint(['status_document'], ['documents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_status_history_delivery'), 'status_history', ['delivery'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_status_history_delivery'), table_name='status_history')
    op.drop_table('status_history')
    op.drop_index('ix_outbox_pending', table_name='outbox')
    op.drop_index(op.f('ix_outbox_intake_sha256'), table_name='outbox')
    op.drop_index(op.f('ix_outbox_document'), table_name='outbox')
    op.drop_table('outbox')
    op.drop_index('ix_deliveries_recipient', table_name='deliveries')
    op.drop_table('deliveries')
    op.drop_table('documents')
    op.drop_index(op.f('ix_agency_certs_code'), table_name='agency_certs')
    op.drop_table('agency_certs')
    op.drop_table('trust_anchors')
    op.drop_index('ix_records_event_at', table_name='records')
    op.drop_index('ix_records_document', table_name='records')
    op.drop_table('records')
    op.drop_table('packages')
    op.drop_table('hub_meta')
    op.drop_table('crls')
    op.drop_table('agencies')
