"""Who each audit entry concerns, beside the log: ``audit_recipients`` (recipient, seq) (issue 15).

The audit search by recipient found a recipient's entries through joins from its deliveries and
statuses on every request, and sorted them all: 1 to 10 s at full size (10M entries). Each entry's
recipients are now written when it is appended, in its transaction (``hub.audit.recipients``), so
a recipient's entries newest first are one range of this table's primary key, joined to the log by
seq. Backfilled here from the log, ``documents`` and ``deliveries`` by the same rule (the entries of
a document addressed to the recipient, of its statuses and of the status packages addressed to it).
The table is not part of the log's hashes (``leaf_hash``); the tamper-evidence is unchanged.

Revision ID: 0040_audit_recipients
Revises: 0039_overdue_open_due
"""

import sqlalchemy as sa
from alembic import op

revision = "0040_audit_recipients"
down_revision = "0039_overdue_open_due"
branch_labels = None
depends_on = None

# hub.audit.recipients.pairs, over every entry: {rcpt} and {orig} are the entry's details'
# "recipient" and "original_sender"
BACKFILL = """
INSERT INTO audit_recipients (recipient, seq)
SELECT recipient, seq FROM (
SELECT dl.recipient AS recipient, r.seq AS seq FROM records r
JOIN documents d ON d.document_id = r.document_id AND d.kind = 'edoc'
 AND d.sender = CASE WHEN r.event = 'status.recorded' THEN {orig} ELSE r.sender END
JOIN deliveries dl ON dl.document = d.id
WHERE (r.event <> 'edoc.delivered' OR {rcpt} = dl.recipient)
  AND (r.event <> 'status.recorded' OR r.sender = dl.recipient OR r.sender = {orig})
UNION
SELECT o.sender, r.seq FROM records r
JOIN documents s ON s.document_id = r.document_id AND s.sender = r.sender AND s.kind = 'status'
JOIN documents o ON o.id = s.refers_to
WHERE s.sender <> o.sender
  AND (r.event <> 'edoc.delivered' OR {rcpt} = o.sender)
  AND (r.event <> 'status.recorded' OR r.sender = o.sender OR r.sender = {orig})
UNION
SELECT odl.recipient, r.seq FROM records r
JOIN documents s ON s.document_id = r.document_id AND s.sender = r.sender AND s.kind = 'status'
JOIN documents o ON o.id = s.refers_to
JOIN deliveries odl ON odl.document = o.id
WHERE s.sender = o.sender
  AND (r.event <> 'edoc.delivered' OR {rcpt} = odl.recipient)
  AND (r.event <> 'status.recorded' OR r.sender = odl.recipient OR r.sender = {orig})
) found ORDER BY recipient, seq
"""


def upgrade() -> None:
    bind = op.get_bind()
    seq = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    if bind.dialect.name == "postgresql":
        # filled first in the primary key's order, the key built once afterwards (faster than row
        # by row): a recipient's rows are together in the table too, so counting them reads a few
        # pages even before a VACUUM has marked them all visible (an index-only scan then); and
        # vacuumed after fewer inserts than by default, so that it stays index-only as entries come
        op.create_table("audit_recipients", sa.Column("recipient", sa.String(13), nullable=False),
                        sa.Column("seq", seq, nullable=False))
        op.execute(BACKFILL.format(rcpt="(r.details ->> 'recipient')", orig="(r.details ->> 'original_sender')"))
        op.create_primary_key("audit_recipients_pkey", "audit_recipients", ["recipient", "seq"])
        op.execute("ALTER TABLE audit_recipients SET (autovacuum_vacuum_insert_scale_factor = 0.02)")
        op.execute("ANALYZE audit_recipients")
    else:
        op.create_table("audit_recipients", sa.Column("recipient", sa.String(13), nullable=False),
                        sa.Column("seq", seq, nullable=False), sa.PrimaryKeyConstraint("recipient", "seq"),
                        sqlite_with_rowid=False)
        op.execute(BACKFILL.format(rcpt="json_extract(r.details, '$.recipient')",
                                   orig="json_extract(r.details, '$.original_sender')"))


def downgrade() -> None:
    op.drop_table("audit_recipients")
