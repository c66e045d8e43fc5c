"""Index documents.refers_to (a document's status packages: audit trails, recipient filters).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_documents_refers_to", "documents", ["refers_to"])


def downgrade() -> None:
    op.drop_index("ix_documents_refers_to", table_name="documents")
