"""The audit log's DocumentId index serves prefixes too (PostgreSQL): ``varchar_pattern_ops``.

``GET /api/v1/audit/entries?document_id=000.00.00.G22,2026/11/*`` (and `hub audit search
--document-id …*`) is ``document_id LIKE 'prefix%'``. A btree in the database's collation serves
such a LIKE only when that collation is "C"; on a database created with any other (C.UTF-8,
en_US.UTF-8, vi_VN.UTF-8) the search walked the whole log. The index is rebuilt with the pattern
operator class, which serves equality (every lookup of a document's entries, ``= ANY`` included)
and prefixes alike, so the appends keep one index on the column, not two. SQLite: unchanged
(its LIKE is case-insensitive and never uses an index; the embedded log is small).

Revision ID: 0041_records_document_prefix
Revises: 0040_audit_recipients
"""

from alembic import op

revision = "0041_records_document_prefix"
down_revision = "0040_audit_recipients"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_records_document", table_name="records")
    op.create_index("ix_records_document", "records", ["document_id"], postgresql_ops={"document_id": "varchar_pattern_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_records_document", table_name="records")
    op.create_index("ix_records_document", "records", ["document_id"])
