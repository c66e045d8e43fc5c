"""Counters for the console's overview, and a trigram index for searching part of a DocumentId
(issue 15, national size).

``record_counts`` (audit entries per event and per hour, and per event over the whole log) and
``document_counts`` (documents rows per sender and how they were authenticated) are kept by
the writers from now on (``hub.store.counts``) and backfilled here from the rows already
written. On PostgreSQL the backfill holds the audit log's append lock and a SHARE lock on
``records`` and ``documents``, so no row is written between the count and the commit; an
instance of an earlier version still running would write rows without counting them: stop
them before upgrading (as for every migration).

``ix_records_document_trgm`` (PostgreSQL only, ``pg_trgm``): a GIN trigram index on
``lower(document_id)`` serves the console's "part of a DocumentId" search
(``lower(document_id) LIKE '%…%'``), which otherwise walks the whole log. SQLite keeps LIKE.

Revision ID: 0034_overview_counters
Revises: 0027_national_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0034_overview_counters"
down_revision = "0037_registry_changes"
branch_labels = None
depends_on = None

APPEND_LOCK = 7310022  # hub.audit.log.APPEND_LOCK


def upgrade() -> None:
    bigint = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    op.create_table(
        "record_counts",
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("hour", bigint, autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event", "hour"),
    )
    op.create_table(
        "document_counts",
        sa.Column("sender", sa.String(length=13), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("sha1", sa.BigInteger(), nullable=False),
        sa.Column("connection", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sender"),
    )
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})")
        op.execute("LOCK TABLE records, documents IN SHARE MODE")
        hour = "floor(extract(epoch FROM at) / 3600)::bigint"
    else:
        # whole seconds only: SQLite's date functions round to milliseconds (…59.9996 would be the next hour)
        hour = "CAST(strftime('%s', substr(at, 1, 19)) AS INTEGER) / 3600"
    op.execute(f"INSERT INTO record_counts (event, hour, n) SELECT event, {hour}, count(*) FROM records "
               f"GROUP BY event, {hour}")
    op.execute("INSERT INTO record_counts (event, hour, n) SELECT event, -1, sum(n) FROM record_counts "
               "GROUP BY event")
    op.execute("INSERT INTO document_counts (sender, n, sha1, connection) SELECT sender, count(*), "
               "sum(CASE WHEN legacy_sha1 THEN 1 ELSE 0 END), "
               "sum(CASE WHEN authenticated_by = 'connection' THEN 1 ELSE 0 END) FROM documents GROUP BY sender")
    if pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_records_document_trgm ON records USING gin (lower(document_id) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_records_document_trgm")
    op.drop_table("document_counts")
    op.drop_table("record_counts")
