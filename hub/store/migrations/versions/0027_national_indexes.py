"""Indexes for national size (issue 15): the follow-up report's period.

``documents.received_at``: the follow-up report and the Quá hạn page filter documents by when
they were received (``hub.followup.query``); without it every report read all documents (3
million rows with their status packages at 1 million documents). Measured by
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
    op.create_index("ix_documents_received_at", "documents", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_documents_received_at", table_name="documents")
