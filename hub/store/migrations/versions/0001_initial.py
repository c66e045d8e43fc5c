"""Registry, trust, documents, deliveries, outbox and records.

Revision ID: 0001
Revises:
"""

from alembic import op

from hub.store import tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = [
    tables.agencies, tables.agency_certs, tables.trust_anchors, tables.crls, tables.settings_kv,
    tables.packages, tables.documents, tables.deliveries, tables.status_history, tables.outbox, tables.records,
]


def upgrade() -> None:
    bind = op.get_bind()
    for t in _TABLES:
        t.create(bind, checkfirst=False)
        for ix in t.indexes:
            pass  # indexes attached to the table are created with it


def downgrade() -> None:
    bind = op.get_bind()
    for t in reversed(_TABLES):
        t.drop(bind)
