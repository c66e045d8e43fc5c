"""Indexes for the follow-up pages at national size (issue 15), as their query plans asked.

``ix_status_history_answers`` (delivery, at) for answers only (06, 02): each copy's first answer
(``hub.followup.sql.first_answer``) is one index-only probe, not a read of its whole history.
``ix_deliveries_open`` (recipient, document) for open copies only (no status, or one that closes
nothing: not 06, 02, 13, 15; a few per cent of all copies): the Quá hạn totals and pages read the
open copies, of everyone or of one recipient, without the answered ones.
``ix_documents_edoc_due`` (due_date, id), edocs with a due date only: the Quá hạn totals join the
open copies to the documents due by a date from the index alone.
``ix_documents_edoc_received`` (received_at) with id and due_date, edocs only: the report reads
the edocs received in its period without visiting the status packages' rows (two thirds of
``documents``) nor the table.

The codes in the predicates are the constants of ``hub.followup.rules`` (CLOSED, ANSWERS), which
``hub.followup.sql`` writes as literals so that PostgreSQL can match a query to these indexes;
``tests/followup/test_sql_rules.py`` checks that they are the same. On SQLite the partial
indexes are created too (it has them since 3.8).

Revision ID: 0035_followup_indexes
Revises: 0037_registry_changes
"""

import sqlalchemy as sa
from alembic import op

revision = "0035_followup_indexes"
down_revision = "0034_overview_counters"
branch_labels = None
depends_on = None

ANSWERS = "status_code IN ('06', '02')"
OPEN = "status IS NULL OR status NOT IN ('06', '02', '13', '15')"
EDOC = "kind = 'edoc'"
EDOC_DUE = "kind = 'edoc' AND due_date IS NOT NULL"


def upgrade() -> None:
    op.create_index("ix_status_history_answers", "status_history", ["delivery", "at"],
                    postgresql_where=sa.text(ANSWERS), sqlite_where=sa.text(ANSWERS))
    op.create_index("ix_deliveries_open", "deliveries", ["recipient", "document"],
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.create_index("ix_documents_edoc_received", "documents", ["received_at"],
                    postgresql_include=["id", "due_date"], postgresql_where=sa.text(EDOC), sqlite_where=sa.text(EDOC))
    op.create_index("ix_documents_edoc_due", "documents", ["due_date", "id"],
                    postgresql_where=sa.text(EDOC_DUE), sqlite_where=sa.text(EDOC_DUE))


def downgrade() -> None:
    op.drop_index("ix_documents_edoc_due", table_name="documents")
    op.drop_index("ix_documents_edoc_received", table_name="documents")
    op.drop_index("ix_deliveries_open", table_name="deliveries")
    op.drop_index("ix_status_history_answers", table_name="status_history")
