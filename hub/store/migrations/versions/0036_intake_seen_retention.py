"""Retention of the idempotency table: an index on ``intake_seen.recorded_at``.

The elected sweeper deletes rows older than ``HUB_INTAKE_SEEN_DAYS`` (``hub.pipeline.retention``)
in batches; without this index each batch would read the table from its start (one row per
package recorded, about 260 million after 30 days at 100 packages/s).

Revision ID: 0036_intake_seen_retention
Revises: 0027_national_indexes
"""

from alembic import op

revision = "0036_intake_seen_retention"
down_revision = "0035_followup_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_intake_seen_recorded_at", "intake_seen", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_intake_seen_recorded_at", table_name="intake_seen")
