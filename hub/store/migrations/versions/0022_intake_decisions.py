"""The worker's decision on each package an HTTP entry point handed over (``intake_decisions``).

Revision ID: 0022_intake_decisions
Revises: 0013_audit_nodes

The HTTP gateway no longer checks packages itself: it publishes them to ``edxml.submit`` like
an adapter and waits for the worker's decision, which the worker writes here in its batch
transaction (``hub.pipeline.submit``). The waiting gateway reads its row and deletes it; rows
nobody came back for are deleted after an hour.
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_intake_decisions"
down_revision = "0021_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_decisions",
        sa.Column("submit_id", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("submit_id"),
    )
    op.create_index("ix_intake_decisions_decided_at", "intake_decisions", ["decided_at"])


def downgrade() -> None:
    op.drop_index("ix_intake_decisions_decided_at", table_name="intake_decisions")
    op.drop_table("intake_decisions")
