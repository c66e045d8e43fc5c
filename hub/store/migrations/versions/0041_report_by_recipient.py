"""The follow-up report read recipient by recipient (issue 15).

``ix_deliveries_recipient_received`` (recipient, received_at), on PostgreSQL with the copy's
``status``, ``due_date``, ``answered_at`` and ``doc_type`` included: the report of everyone
counts each recipient's copies of the period from one range of this index (an index-only scan),
already grouped, so the whole period is never sorted by recipient; each recipient's median sorts
only its own answered copies. Before, the period's copies (202,180 for a week at full size) were
read by ``ix_deliveries_received_at``, sorted by recipient (past ``work_mem``: on disk) and then
sorted again inside each group for ``percentile_cont``.

Revision ID: 0041_report_by_recipient
Revises: 0039_overdue_open_due
"""

from alembic import op

revision = "0041_report_by_recipient"
down_revision = "0039_overdue_open_due"
branch_labels = None
depends_on = None

INCLUDE = ["status", "due_date", "answered_at", "doc_type"]  # what hub.followup.query.copies reads


def upgrade() -> None:
    op.create_index("ix_deliveries_recipient_received", "deliveries", ["recipient", "received_at"],
                    postgresql_include=INCLUDE)


def downgrade() -> None:
    op.drop_index("ix_deliveries_recipient_received", table_name="deliveries")
