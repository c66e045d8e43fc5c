"""Indexes for national size (issue 15): a document by its DocumentId, the follow-up report's period.

``documents.document_id``: the console's document page, the audit trail and the evidence
bundle find a document by its DocumentId, often without its sender; the only index on it was
``uq_documents_sender_docid`` (sender first), so each read every documents row (3 million with
their status packages at 1 million documents).
``documents.received_at``: the follow-up report filters documents by when they were received
(``hub.followup.query``); without it every report read all documents. Measured by
``benchmarks/national_db.py``.

Revision ID: 0027_national_indexes
Revises: 0024_blobs
"""

from alembic import op

revision = "0027_national_indexes"
down_revision = "0024_blobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_documents_document_id", "documents", ["document_id"])
    op.create_index("ix_documents_received_at", "documents", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_documents_received_at", table_name="documents")
    op.drop_index("ix_documents_document_id", table_name="documents")
