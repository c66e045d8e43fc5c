"""What the follow-up report needs, kept on each copy (issue 15).

``deliveries`` gets its document's ``received_at``, ``due_date`` and ``doc_type`` (a documents
row never changes) and ``answered_at``, the time of the copy's first answering status (06 or 02,
``hub.followup.rules.ANSWERS``), which the recorder sets in the transaction that records that
status (``hub.pipeline.status_rows.write_history``). With ``ix_deliveries_received_at`` the
report reads its period's copies by one index range: no join over every copy, no status_history
probe per copy. Backfilled here from ``documents`` and ``status_history``.

Revision ID: 0038_followup_copies
Revises: 0036_intake_seen_retention
"""

import sqlalchemy as sa
from alembic import op

revision = "0038_followup_copies"
down_revision = "0036_intake_seen_retention"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ANSWERS = "('06', '02')"  # hub.followup.rules.ANSWERS

BACKFILL = f"""
UPDATE deliveries SET received_at = documents.received_at, due_date = documents.due_date,
       doc_type = documents.doc_type,
       answered_at = (SELECT min(h.at) FROM status_history h
                      WHERE h.delivery = deliveries.id AND h.status_code IN {ANSWERS})
FROM documents WHERE documents.id = deliveries.document
"""


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # ADD COLUMN in place on both (not a batch: that would copy the table on SQLite)
    # SQLite cannot make a filled column NOT NULL afterwards without copying the table, which
    # its foreign keys (status_history → deliveries) refuse inside the migration's
    # transaction: there the column is added NOT NULL with a placeholder default that the
    # backfill overwrites (every writer sets it; PostgreSQL, with no default, refuses one that
    # does not)
    op.add_column("deliveries", sa.Column("received_at", TS, nullable=not sqlite,
                  server_default=sa.text("'1970-01-01 00:00:00.000000'") if sqlite else None))
    op.add_column("deliveries", sa.Column("due_date", sa.Date, nullable=True))
    op.add_column("deliveries", sa.Column("doc_type", sa.String(8), nullable=True))
    op.add_column("deliveries", sa.Column("answered_at", TS, nullable=True))
    op.execute(BACKFILL)  # UPDATE … FROM: PostgreSQL, and SQLite since 3.33
    if not sqlite:
        op.alter_column("deliveries", "received_at", existing_type=TS, nullable=False)
    op.create_index("ix_deliveries_received_at", "deliveries", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_received_at", table_name="deliveries")
    for column in ("answered_at", "doc_type", "due_date", "received_at"):
        op.drop_column("deliveries", column)  # in place (SQLite has DROP COLUMN since 3.35)
