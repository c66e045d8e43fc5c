"""Exactly-once recording without the audit log: the idempotency table ``intake_seen``.

Revision ID: 0021_idempotency
Revises: 0013_audit_nodes

One row per intake message recorded: (SHA-256 of its body, the broker user that published
it), written in the batch's transaction. Before this revision a redelivered package found
its refusal in the audit log, so with ``HUB_AUDIT=off`` (or after an ambiguous commit) it
could be refused, and answered, twice. No backfill: rows for packages recorded before the
upgrade would come from the audit log only, and an accepted package is still found by its
document.
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_idempotency"
down_revision = "0013_audit_nodes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_seen",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("adapter_user", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "adapter_user"),
    )


def downgrade() -> None:
    op.drop_table("intake_seen")
